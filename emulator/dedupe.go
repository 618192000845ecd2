package emulator

// dedupeKey is a 128-bit hash of (api_key, device_id, insert_id), made of
// two maphash hashes with the Server's seeds (see Server.dedupeKeys). Two
// independent 64-bit hashes make an accidental collision (which would drop
// a real event) vanishingly unlikely while keeping entries small.
type dedupeKey [2]uint64

type dedupeEntry struct {
	key dedupeKey
	at  int64 // unix ms of the first copy
}

// dedupeSet remembers insert_ids for DedupeWindow. Entries are queued in
// arrival order so expiry is amortised O(1) per insert. A key is in seen
// exactly while its latest queue entry is: insert adds only absent keys, and
// entries leave the queue in the order they came.
type dedupeSet struct {
	seen  map[dedupeKey]struct{}
	queue chunked[dedupeEntry]
}

func newDedupeSet() *dedupeSet {
	return &dedupeSet{seen: make(map[dedupeKey]struct{})}
}

// expire forgets entries first seen at or before cutoff (unix ms).
func (d *dedupeSet) expire(cutoff int64) {
	for d.queue.len() > 0 && d.queue.front().at <= cutoff {
		delete(d.seen, d.queue.front().key)
		d.queue.pop()
	}
}

// insert reports whether k is new, remembering it if so.
func (d *dedupeSet) insert(k dedupeKey, now int64) bool {
	n := len(d.seen)
	d.seen[k] = struct{}{} // one map operation for lookup and insert
	if len(d.seen) == n {
		return false
	}
	d.queue.push(dedupeEntry{key: k, at: now})
	return true
}

func (d *dedupeSet) len() int { return len(d.seen) }
