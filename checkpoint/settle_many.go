package checkpoint

import (
	"slices"

	"github.com/backfillhq/backfill"
)

// SettleEvents settles the records of evs[idx...] with one outcome in one
// critical section and returns how many were not settled before (the others
// change nothing, as with Settle). The result is that of settling them one
// by one in ascending record order; Settle's resume rules make it the same
// whatever the order. It is Settle for a whole request: one lock, and each
// object's records merged into its settled ranges in one pass instead of
// one insertion each.
func (t *Tracker) SettleEvents(evs []backfill.Event, idx []int, outcome Outcome) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	recs := t.recs[:0]
	var (
		tr  *track
		obj string
	)
	for _, i := range idx {
		p := &evs[i].Pos
		if tr == nil || p.Object != obj {
			if tr != nil {
				n += t.settleSorted(tr, recs, outcome)
			}
			recs = recs[:0]
			tr, obj = t.get(p.Object), p.Object
		}
		if r := p.Record; r >= 0 && !tr.obj.Skip(r) {
			recs = append(recs, r)
		}
	}
	if tr != nil {
		n += t.settleSorted(tr, recs, outcome)
	}
	t.recs = recs[:0]
	return n
}

// settleSorted settles recs (records of tr not settled yet, in any order,
// possibly repeated) and returns how many distinct records it settled.
// t.mu must be held.
func (t *Tracker) settleSorted(tr *track, recs []int64, outcome Outcome) int {
	if len(recs) == 0 {
		return 0
	}
	slices.Sort(recs)
	recs = slices.Compact(recs)
	n := int64(len(recs))
	o := &tr.obj
	t.count(o, outcome, n)
	t.ranges = mergeRecords(t.ranges[:0], o.Settled, recs)
	o.Settled, t.ranges = t.ranges, o.Settled
	w := o.Watermark
	if len(o.Settled) > 0 && o.Settled[0][0] == w {
		w = o.Settled[0][1]
		o.Settled = slices.Delete(o.Settled, 0, 1)
	}
	// Settle, record by record in ascending order, resumes at the last
	// watermark move: from the record settled last (w-1) when it is in this
	// batch and was read in this run.
	m, known := mark{}, false
	if w > o.Watermark {
		if _, in := slices.BinarySearch(recs, w-1); in {
			m, known = tr.inflight.get(w - 1)
		}
	}
	tr.inflight.takeSorted(recs)
	if w == o.Watermark {
		return int(n)
	}
	tr.moveWatermark(w, m, known)
	tr.checkDone()
	return int(n)
}

// mergeRecords appends to dst the sorted, merged range set of rs plus the
// sorted, distinct records recs (none of them in rs).
func mergeRecords(dst, rs [][2]int64, recs []int64) [][2]int64 {
	push := func(a, b int64) {
		if k := len(dst) - 1; k >= 0 && dst[k][1] >= a {
			dst[k][1] = max(dst[k][1], b)
			return
		}
		dst = append(dst, [2]int64{a, b})
	}
	i := 0
	for _, r := range rs {
		for i < len(recs) && recs[i] < r[0] {
			push(recs[i], recs[i]+1)
			i++
		}
		push(r[0], r[1])
	}
	for ; i < len(recs); i++ {
		push(recs[i], recs[i]+1)
	}
	return dst
}
