package pipeline

import (
	"hash/maphash"
	"strings"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
)

// DefaultDupeSlots is how many (id, insert_id) keys the duplicate detector
// remembers: 2^18 slots of 16 bytes, 4 MiB.
const DefaultDupeSlots = 1 << 18

// dupeWays is the number of slots probed per key (a 4-way set).
const dupeWays = 4

// CounterDuplicateInsertIDs is the checkpoint counter (Counters.Extra) of
// events that share their id and insert_id with an earlier, different
// event of the job.
const CounterDuplicateInsertIDs = "duplicate_insert_ids"

// dupes detects two different events that Amplitude would collapse into
// one: the same insert_id for the same device (or, without a device_id,
// the same user, from whose id Amplitude derives the device), with other
// content. Amplitude keeps the first and silently drops the second, so
// the pipeline reports such pairs. Memory is bounded: a fixed table of
// fingerprints (64-bit hashes of the key and of the event's bytes), 4-way
// set associative, the oldest key of a full set overwritten. A pair further
// apart in the input than the table remembers can go unnoticed; a false
// report needs a 64-bit hash collision. Identical copies of one event
// (a source that repeats a record) are not reported: Amplitude drops them
// and nothing is lost. It is used by the dispatch goroutine only.
type dupes struct {
	seed maphash.Seed
	// slots holds, per 4-way set, key and sum of each way side by side
	// (64 bytes: one cache line per check). A key of 0 marks an empty way.
	slots []uint64
	next  []uint8 // per set: the way to overwrite next
	nsets uint64
}

func newDupes(slots int) *dupes {
	if slots <= 0 {
		slots = DefaultDupeSlots
	}
	sets := max(slots/dupeWays, 1)
	return &dupes{seed: maphash.MakeSeed(), slots: make([]uint64, 2*sets*dupeWays), next: make([]uint8, sets), nsets: uint64(sets)}
}

// check remembers ev and reports whether an earlier, different event had
// the same scope id and insert_id. Position-derived ids ("bf-", unique per
// source record by construction) are not checked.
func (d *dupes) check(ev *backfill.Event) bool {
	if ev.InsertID == "" || strings.HasPrefix(ev.InsertID, "bf-") {
		return false
	}
	scope := maphash.String(d.seed, ev.DeviceID)
	if ev.DeviceID == "" {
		scope = ^maphash.String(d.seed, ev.UserID) // users apart from devices
	}
	key := mix64(scope^mix64(maphash.String(d.seed, ev.InsertID))) | 1 // never 0, the empty mark
	sum := d.contentSum(ev.Raw)
	set := (key >> 1) % d.nsets
	ways := d.slots[2*set*dupeWays : 2*(set+1)*dupeWays]
	for i := 0; i < 2*dupeWays; i += 2 {
		switch ways[i] {
		case key:
			return ways[i+1] != sum
		case 0:
			ways[i], ways[i+1] = key, sum
			return false
		}
	}
	w := 2 * int(d.next[set])
	d.next[set] = (d.next[set] + 1) % dupeWays
	ways[w], ways[w+1] = key, sum
	return false
}

// dupeHead and dupeTail bound what contentSum hashes of a long event.
const dupeHead, dupeTail = 512, 128

// contentSum fingerprints an event's bytes: all of a short event; of a
// longer one its length, first dupeHead and last dupeTail bytes, so that
// the check costs the same for a 3 KB event as for a 600-byte one. Two
// different events that share their id, insert_id, length and both ends
// go unreported (their differences are then in the middle of the
// properties); that is the price of keeping the dispatch stage cheap.
func (d *dupes) contentSum(raw []byte) uint64 {
	if len(raw) <= dupeHead+dupeTail {
		return maphash.Bytes(d.seed, raw)
	}
	h := maphash.Bytes(d.seed, raw[:dupeHead])
	t := maphash.Bytes(d.seed, raw[len(raw)-dupeTail:])
	return mix64(h^mix64(t)) ^ uint64(len(raw))
}

// mix64 is the splitmix64 finalizer: it combines two hashes without the
// symmetry of a plain xor.
func mix64(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

func maphashBytes(d *dupes, b []byte) uint64 { return maphash.Bytes(d.seed, b) }

// maxDupeExamples is how many duplicate insert_ids are logged one by one.
const maxDupeExamples = 5

// duplicate counts and (the first few) logs an event that Amplitude would
// drop as a duplicate of an earlier, different one.
func (r *run) duplicate(ev *backfill.Event) {
	n := r.stats.DuplicateInsertIDs.Add(1)
	r.deps.Tracker.AddCounters(checkpoint.Counters{Extra: map[string]int64{CounterDuplicateInsertIDs: 1}})
	if n <= maxDupeExamples {
		r.log.Warn("different events share an insert_id: Amplitude keeps only the first",
			"insert_id", ev.InsertID, "device_id", ev.DeviceID, "user_id", ev.UserID, "event_type", ev.EventType, "at", ev.Pos.String())
	} else if n == maxDupeExamples+1 {
		r.log.Warn("more events share an insert_id with a different event; only their count is reported from now on")
	}
}
