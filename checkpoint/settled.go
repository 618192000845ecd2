package checkpoint

import (
	"slices"
	"sort"
)

// settledSet is the set of an object's records settled above its
// watermark, while a Tracker holds the object (Object.Settled is its saved
// form). Settling a record costs O(1) amortised, whatever the size of the
// set, the number of objects and the order records settle in:
//
//   - a request's records of one object (addSorted) at least an eighth as
//     many as the ranges held are merged into rs in one pass, O(1) per
//     record; fewer, and a record settled alone (add), go to buf, a hash
//     set, so a request holding a few records of each of many objects
//     does not walk each object's ranges;
//   - buf is merged into the sorted range list rs only when it holds at
//     least as many records as rs holds ranges (and at least minMerge), so
//     a merge, linear in both, costs O(1) per record merged plus the sort
//     of buf;
//   - the watermark moves over the front of rs (head, no copy) and over
//     records of buf, one step per range or record it passes.
//
// A membership test is a hash lookup plus a binary search of rs (one
// comparison when the record lies beyond the last range, as every record a
// reader produces does). Memory is O(records in flight): rs has one range
// per gap of unsettled records, buf at most as many records as rs ranges.
type settledSet struct {
	rs    [][2]int64 // rs[head:] are sorted, merged, half-open ranges
	head  int
	buf   map[int64]struct{} // settled records not merged yet, none in rs
	keys  []int64            // scratch of merge
	spare [][2]int64         // storage of the previous rs, reused by merge
	// ops counts the elementary steps (a range or record visited, a probe
	// of a search): the tests that bound the settle cost read it.
	ops int64
}

// minMerge is the least number of buffered records that triggers a merge.
const minMerge = 64

// newSettledSet returns a set holding the saved ranges rs (sorted, merged).
func newSettledSet(rs [][2]int64) settledSet {
	return settledSet{rs: slices.Clone(rs)}
}

// empty reports whether no record is held.
func (s *settledSet) empty() bool { return len(s.buf) == 0 && s.head == len(s.rs) }

// held returns the number of ranges and buffered records held.
func (s *settledSet) held() int { return len(s.rs) - s.head + len(s.buf) }

// contains reports whether record x is held.
func (s *settledSet) contains(x int64) bool {
	if _, ok := s.buf[x]; ok {
		return true
	}
	rs := s.rs[s.head:]
	if len(rs) == 0 || x >= rs[len(rs)-1][1] || x < rs[0][0] {
		s.ops++
		return false
	}
	i := sort.Search(len(rs), func(i int) bool { s.ops++; return rs[i][1] > x })
	return i < len(rs) && rs[i][0] <= x
}

// add inserts record x, which is not held.
func (s *settledSet) add(x int64) {
	s.ops++
	if s.buf == nil {
		s.buf = make(map[int64]struct{})
	}
	s.buf[x] = struct{}{}
	if len(s.buf) >= max(minMerge, len(s.rs)-s.head) {
		s.merge()
	}
}

// addSorted inserts the records recs (sorted, distinct, none held; the
// watermark record among them is fine, advance then passes it). A batch
// at least an eighth as long as the ranges held is merged into them at
// once, in one pass (the common case: a request settles a long run of one
// object); a shorter one goes record by record to buf, so that a request
// holding a few records of each of many objects does not walk each
// object's ranges.
func (s *settledSet) addSorted(recs []int64) {
	if live := len(s.rs) - s.head; live > 8*len(recs) {
		for _, x := range recs {
			s.add(x)
		}
		return
	}
	s.mergeSorted(recs)
}

// advance returns the watermark that follows w when record w-1 has just
// been settled: w itself unless records from w on are held, which it then
// removes.
func (s *settledSet) advance(w int64) int64 {
	for {
		s.ops++
		if s.head < len(s.rs) && s.rs[s.head][0] == w {
			w = s.rs[s.head][1]
			s.head++
			continue
		}
		if _, ok := s.buf[w]; ok {
			delete(s.buf, w)
			w++
			continue
		}
		break
	}
	if s.head == len(s.rs) {
		s.rs, s.head = s.rs[:0], 0
	} else if s.head > 32 && s.head > len(s.rs)/2 {
		// Drop the passed ranges once they are most of the storage: the
		// copy is paid for by the ranges passed since the last one.
		s.ops += int64(len(s.rs) - s.head)
		n := copy(s.rs, s.rs[s.head:])
		s.rs, s.head = s.rs[:n], 0
	}
	return w
}

// merge moves every buffered record into rs.
func (s *settledSet) merge() {
	if len(s.buf) == 0 {
		return
	}
	keys := s.keys[:0]
	for x := range s.buf {
		keys = append(keys, x)
	}
	clear(s.buf)
	slices.Sort(keys)
	s.mergeSorted(keys)
	s.keys = keys[:0]
	if c := 4 * max(minMerge, len(s.rs)); cap(s.keys) > c || cap(s.spare) > 2*c {
		// A burst is over: let its storage go.
		s.keys, s.spare = nil, nil
	}
}

// mergeSorted merges the records keys (sorted, distinct, none in rs) into
// rs, in one pass over both.
func (s *settledSet) mergeSorted(keys []int64) {
	old := s.rs[s.head:]
	s.ops += int64(len(old) + len(keys))
	dst := s.spare[:0]
	if cap(dst) < len(old)+len(keys) {
		dst = make([][2]int64, 0, 2*(len(old)+len(keys)))
	}
	push := func(a, b int64) {
		if k := len(dst) - 1; k >= 0 && dst[k][1] >= a {
			dst[k][1] = max(dst[k][1], b)
			return
		}
		dst = append(dst, [2]int64{a, b})
	}
	i := 0
	for _, r := range old {
		for i < len(keys) && keys[i] < r[0] {
			push(keys[i], keys[i]+1)
			i++
		}
		push(r[0], r[1])
	}
	for ; i < len(keys); i++ {
		push(keys[i], keys[i]+1)
	}
	s.spare, s.rs, s.head = s.rs[:0], dst, 0
}

// ranges returns the held records as sorted, merged ranges (a new slice,
// nil when empty). It merges the buffer first.
func (s *settledSet) ranges() [][2]int64 {
	s.merge()
	if s.head == len(s.rs) {
		return nil
	}
	return slices.Clone(s.rs[s.head:])
}

// reset drops everything and releases the storage.
func (s *settledSet) reset() { *s = settledSet{ops: s.ops} }
