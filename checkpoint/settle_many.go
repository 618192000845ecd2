package checkpoint

import (
	"slices"

	"github.com/backfillhq/backfill"
)

// SettleEvents settles the records of evs[idx...] with one outcome in one
// critical section and returns how many were not settled before (the others
// change nothing, as with SettleWith). The result is that of settling them
// one by one in ascending record order; SettleWith's resume rules make it
// the same whatever the order. It is SettleWith for a whole request: one
// lock, and each object's records added to its settled set together, at
// O(1) amortised per record however many objects the request spans (see
// settledSet.addSorted).
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
		if r := p.Record; r >= 0 && !tr.skip(r) {
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
	tr.settled.addSorted(recs)
	w := tr.settled.advance(o.Watermark)
	// Settling record by record in ascending order resumes at the last
	// watermark move: from the record settled last (w-1) when it is in
	// this batch and was read in this run.
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
