package checkpoint

// pendingSet holds the resume marks of an object's records read and not
// settled yet. It replaces a map[int64]mark: records are read in ascending
// order, so they are appended to a queue kept in record order, and a
// settled record is flagged where it lies and dropped once it reaches the
// front. Finding a record is a search bounded by the record numbers at both
// ends of the queue, a single probe while the queued records are
// contiguous, and SettleEvents walks a batch's sorted records through the
// queue with a moving cursor.
//
// Memory is O(records not settled), not O(distance from the oldest one to
// the newest read): when the queue fills and at most half of it is
// unsettled (a straggler holds the front while the window moves on) the
// settled entries are squeezed out in place; storage grows (2x) only when
// more than three quarters of it is unsettled and shrinks when less than an
// eighth is, so it stays within eight times the unsettled records at its
// last resize (at least minPending), typically under three. An entry is 32 bytes: a job holds one for every record
// between its reader and its last acknowledgement.
//
// A record read at or below the last one queued (only if a reader went back,
// which the pipeline does not do) goes to the extra map instead.
type pendingSet struct {
	q     []pending // q[head:] is the queue, strictly ascending rec
	head  int       // q[head] is unsettled unless the queue is empty
	open  int       // unsettled entries in q[head:]
	extra map[int64]mark
	// ops counts the elementary steps (an entry visited or copied, a probe
	// of a search): the tests that bound the settle cost read it.
	ops int64
}

type pending struct {
	rec     int64
	m       mark
	settled bool
}

// minPending is the smallest queue storage allocated once the queue grows
// past its first allocation, and below which it is never shrunk.
const minPending = 1024

// len returns the number of records held (read and not settled).
func (s *pendingSet) len() int { return s.open + len(s.extra) }

// entries returns the number of entries held in memory, settled or not.
func (s *pendingSet) entries() int { return len(s.q) - s.head + len(s.extra) }

// reset drops everything and releases the storage.
func (s *pendingSet) reset() { *s = pendingSet{ops: s.ops} }

// add records that record r, at m, was read and is not settled.
func (s *pendingSet) add(r int64, m mark) {
	n := len(s.q)
	if n < cap(s.q) && (n == s.head || s.q[n-1].rec < r) && s.extra == nil {
		s.q = s.q[:n+1]
		s.q[n] = pending{rec: r, m: m}
		s.open++
		return
	}
	s.addSlow(r, m)
}

func (s *pendingSet) addSlow(r int64, m mark) {
	if n := len(s.q); n > s.head && s.q[n-1].rec >= r {
		// Out of order: overwrite the mark of a held record (as a map
		// assignment would), or hold it aside.
		if i := s.search(s.head, r); i < n && s.q[i].rec == r && !s.q[i].settled {
			s.q[i].m = m
			return
		}
		if s.extra == nil {
			s.extra = make(map[int64]mark)
		}
		s.extra[r] = m
		return
	}
	if s.extra != nil {
		if _, ok := s.extra[r]; ok {
			s.extra[r] = m
			return
		}
	}
	if len(s.q) == cap(s.q) {
		s.makeRoom()
	}
	s.q = append(s.q, pending{rec: r, m: m})
	s.open++
}

// makeRoom makes room for at least one more entry at the end of the queue:
// it moves the unsettled entries to the start of the storage, in place if
// they fill at most three quarters of it (so at least a quarter is freed:
// O(1) amortised per entry), else to storage twice as large (and to smaller
// storage if they fill less than an eighth).
func (s *pendingSet) makeRoom() {
	c := cap(s.q)
	var dst []pending
	switch keep := s.open; {
	case c == 0:
		s.q, s.head = make([]pending, 0, 64), 0
		return
	case keep > c-c/4:
		dst = make([]pending, 0, max(minPending, 2*c))
	case keep < c/8 && c > minPending:
		dst = make([]pending, 0, max(minPending, 4*keep))
	default:
		dst = s.q[:0] // writes never overtake reads
	}
	s.ops += int64(len(s.q) - s.head)
	for _, e := range s.q[s.head:] {
		if !e.settled {
			dst = append(dst, e)
		}
	}
	s.q, s.head = dst, 0
}

// search returns the index of the first entry of q[lo:] whose record is at
// least r (len(q) if none). Records are distinct integers in ascending
// order, so the entry holding r is at most r-q[lo].rec places after lo and
// at most q[last].rec-r places before the last: the search is bounded to
// that window, a single entry while the records are contiguous.
func (s *pendingSet) search(lo int, r int64) int {
	q := s.q
	hi := len(q)
	s.ops++
	if lo >= hi {
		return hi
	}
	if d := r - q[lo].rec; d <= 0 {
		return lo
	} else if d < int64(hi-lo) {
		hi = lo + int(d)
	}
	if d := q[len(q)-1].rec - r; d < 0 {
		return len(q)
	} else if d < int64(len(q)-1-lo) {
		lo = len(q) - 1 - int(d)
	}
	// Invariant: q[lo-1].rec < r (or lo is the start), q[hi].rec >= r (or
	// hi is the end) and the answer is in [lo, hi].
	for lo < hi {
		s.ops++
		m := int(uint(lo+hi) >> 1)
		if q[m].rec < r {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// get returns the mark of r if it is held.
func (s *pendingSet) get(r int64) (mark, bool) {
	if i := s.search(s.head, r); i < len(s.q) && s.q[i].rec == r && !s.q[i].settled {
		return s.q[i].m, true
	}
	if s.extra != nil {
		m, ok := s.extra[r]
		return m, ok
	}
	return mark{}, false
}

// take removes r and returns its mark if it was held.
func (s *pendingSet) take(r int64) (mark, bool) {
	if i := s.search(s.head, r); i < len(s.q) && s.q[i].rec == r && !s.q[i].settled {
		s.q[i].settled = true
		s.open--
		m := s.q[i].m
		s.popSettled()
		return m, true
	}
	if s.extra != nil {
		if m, ok := s.extra[r]; ok {
			s.dropExtra(r)
			return m, ok
		}
	}
	return mark{}, false
}

// takeSorted removes every record of recs (ascending and distinct) that is
// held.
func (s *pendingSet) takeSorted(recs []int64) {
	i := s.head
	for _, r := range recs {
		i = s.search(i, r)
		if i == len(s.q) {
			break
		}
		if e := &s.q[i]; e.rec == r && !e.settled {
			e.settled = true
			s.open--
		}
	}
	s.popSettled()
	if s.extra != nil {
		for _, r := range recs {
			s.dropExtra(r)
		}
	}
}

func (s *pendingSet) dropExtra(r int64) {
	delete(s.extra, r)
	if len(s.extra) == 0 {
		s.extra = nil
	}
}

// popSettled drops the settled entries at the front of the queue.
func (s *pendingSet) popSettled() {
	h := s.head
	for h < len(s.q) && s.q[h].settled {
		h++
	}
	s.ops += int64(h - s.head)
	if h == len(s.q) {
		s.q, h = s.q[:0], 0
	}
	s.head = h
}
