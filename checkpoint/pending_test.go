package checkpoint

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/backfillhq/backfill"
)

// checkPending compares s with the map model: same records held, same
// marks, and the queue's storage bounded by the peak of unsettled records.
func checkPending(t *testing.T, s *pendingSet, model map[int64]mark, peak int, step string) {
	t.Helper()
	if s.len() != len(model) {
		t.Fatalf("%s: len=%d, model %d", step, s.len(), len(model))
	}
	for r, want := range model {
		if got, ok := s.get(r); !ok || got != want {
			t.Fatalf("%s: get(%d)=%v,%v want %v", step, r, got, ok, want)
		}
	}
	held := 0
	for i := s.head; i < len(s.q); i++ {
		if i > s.head && s.q[i-1].rec >= s.q[i].rec {
			t.Fatalf("%s: queue out of order at %d", step, i)
		}
		if !s.q[i].settled {
			held++
			if _, ok := model[s.q[i].rec]; !ok {
				t.Fatalf("%s: queue holds %d, not in model", step, s.q[i].rec)
			}
		}
	}
	if held != s.open || s.head < len(s.q) && s.q[s.head].settled {
		t.Fatalf("%s: open=%d, %d unsettled in queue (or a settled front)", step, s.open, held)
	}
	if c := cap(s.q); c > max(minPending, 4*peak) {
		t.Fatalf("%s: queue storage %d with at most %d unsettled", step, c, peak)
	}
}

// pendingSet behaves as a map[int64]mark under the tracker's use: adds in
// ascending order with gaps (and rarely out of order), removals one by one
// or in sorted batches, in random order, with repeats and records not held,
// and stragglers held for long while the window moves on and shrinks.
func TestPendingSetMatchesMap(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			var s pendingSet
			model := map[int64]mark{}
			markOf := func(r int64) mark {
				if r%3 == 0 {
					return mark{a: -1 - r%5, b: rng.Int64N(1000)} // Parquet
				}
				return mark{a: r * 7, b: r + 1}
			}
			var (
				next    int64
				window  = 1 + rng.IntN(2500)
				held    []int64 // unsettled, not stragglers
				strag   []int64
				peak    int
				removed []int64
			)
			for step := range 2500 {
				if rng.IntN(200) == 0 {
					window = 1 + rng.IntN(2500) // grow and shrink the queue
				}
				// Read up to the window, with gaps, a few stragglers.
				for len(held) < window {
					next += 1 + int64(rng.IntN(3)/2)*int64(rng.IntN(20))
					m := markOf(next)
					s.add(next, m)
					model[next] = m
					if rng.IntN(1000) == 0 {
						strag = append(strag, next)
					} else {
						held = append(held, next)
					}
				}
				if rng.IntN(300) == 0 && len(model) > 0 {
					// Out of order: a held record again (new mark), or one
					// below the last read that is not held.
					r := next - int64(rng.IntN(100))
					if r < 0 {
						r = 0
					}
					_, wasHeld := model[r]
					m := markOf(r)
					s.add(r, m)
					model[r] = m
					if !wasHeld {
						held = append(held, r)
					}
				}
				peak = max(peak, len(model))
				// Settle: a batch or one record, some repeated or not held.
				var recs []int64
				for range 1 + rng.IntN(min(len(held), 500)) {
					switch i := rng.IntN(len(held)); {
					case rng.IntN(20) == 0 && len(removed) > 0:
						recs = append(recs, removed[rng.IntN(len(removed))])
					case rng.IntN(50) == 0:
						recs = append(recs, next+1+int64(rng.IntN(10)))
					default:
						recs = append(recs, held[i])
						held[i] = held[len(held)-1]
						held = held[:len(held)-1]
					}
					if len(held) == 0 {
						break
					}
				}
				if len(strag) > 0 && rng.IntN(100) == 0 {
					recs = append(recs, strag[0])
					strag = strag[1:]
				}
				if rng.IntN(2) == 0 {
					for _, r := range recs {
						want, wok := model[r]
						got, ok := s.take(r)
						if ok != wok || got != want {
							t.Fatalf("step %d: take(%d)=%v,%v want %v,%v", step, r, got, ok, want, wok)
						}
						delete(model, r)
					}
				} else {
					slices.Sort(recs)
					recs = slices.Compact(recs)
					s.takeSorted(recs)
					for _, r := range recs {
						delete(model, r)
					}
				}
				removed = append(removed, recs...)
				if len(removed) > 5000 {
					removed = removed[len(removed)-1000:]
				}
				if s.len() != len(model) {
					t.Fatalf("step %d: len=%d, model %d", step, s.len(), len(model))
				}
				if step%16 == 0 {
					checkPending(t, &s, model, peak, fmt.Sprintf("step %d", step))
				}
			}
		})
	}
}

// refTracker is the tracker's per-record logic as it was with a map of the
// records in flight, one object per track: the reference the differential
// test compares the Tracker with.
type refTracker struct {
	objs map[string]*refTrack
	c    Counters
}

type refTrack struct {
	obj      Object
	inflight map[int64]mark
	lastRec  int64
	last     mark
}

func newRefTracker(loaded *State) *refTracker {
	t := &refTracker{objs: map[string]*refTrack{}}
	if loaded != nil {
		for url, o := range loaded.Objects {
			t.objs[url] = &refTrack{obj: *o.clone(), lastRec: -1}
		}
		t.c = loaded.Counters.clone()
	}
	return t
}

func (t *refTracker) get(obj string) *refTrack {
	tr := t.objs[obj]
	if tr == nil {
		tr = &refTrack{obj: Object{ResumeOffset: -1, Total: -1}, lastRec: -1}
		t.objs[obj] = tr
	}
	return tr
}

func (tr *refTrack) setResume(r int64, m mark) {
	o := &tr.obj
	if r < o.ResumeRecord || r > o.Watermark {
		return
	}
	o.ResumeRecord = r
	m.set(o)
}

func (tr *refTrack) checkDone() {
	o := &tr.obj
	if o.Total >= 0 && o.Watermark >= o.Total && len(o.Settled) == 0 {
		o.Done = true
		tr.inflight = nil
	}
}

func (t *refTracker) Read(pos backfill.Position) bool {
	tr := t.get(pos.Object)
	r := pos.Record
	if r > tr.lastRec {
		tr.lastRec, tr.last = r, markOf(pos)
	}
	if tr.obj.Skip(r) {
		return true
	}
	if tr.inflight == nil {
		tr.inflight = map[int64]mark{}
	}
	m := markOf(pos)
	tr.inflight[r] = m
	if r == tr.obj.Watermark {
		tr.setResume(r, m)
	}
	return false
}

func (t *refTracker) EOF(obj string, total int64) {
	tr := t.get(obj)
	tr.obj.Total = total
	tr.checkDone()
}

func (t *refTracker) Settle(pos backfill.Position) bool {
	tr := t.get(pos.Object)
	o := &tr.obj
	r := pos.Record
	if r < 0 || o.Skip(r) {
		return false
	}
	m, known := tr.inflight[r]
	delete(tr.inflight, r)
	o.Read++
	o.Accepted++
	t.c.EventsRead++
	t.c.EventsAccepted++
	if r != o.Watermark {
		o.Settled = addRange(o.Settled, r)
		return true
	}
	w := r + 1
	if len(o.Settled) > 0 && o.Settled[0][0] == w {
		w = o.Settled[0][1]
		o.Settled = slices.Delete(o.Settled, 0, 1)
	}
	o.Watermark = w
	wm, wknown := tr.inflight[w]
	switch {
	case wknown:
		tr.setResume(w, wm)
	case tr.lastRec == w-1 && tr.lastRec >= 0:
		tr.setResume(tr.lastRec, tr.last)
	case known && r == w-1:
		tr.setResume(r, m)
	}
	tr.checkDone()
	return true
}

// The Tracker leaves every object, counter and set of records in flight as
// the map-based reference does: several objects read interleaved, with
// gaps (a resume from a saved state), EOF, stragglers held while
// thousands of records are read after them, and settles in random order,
// one by one or in batches, with repeats and records settled already.
func TestTrackerMatchesMapReference(t *testing.T) {
	objs := []string{"file:///a.jsonl", "file:///b.jsonl", "file:///c.jsonl"}
	posOf := func(o string, r int64) backfill.Position {
		return backfill.Position{Object: o, Record: r, Offset: r * 10, Line: r + 1, RowGroup: int(r / 100), Row: r % 100}
	}
	for seed := range uint64(24) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			total := map[string]int64{}
			for _, o := range objs {
				total[o] = int64(rng.IntN(6000))
			}
			tr, ref := NewTracker(nil), newRefTracker(nil)
			compare := func(step string) {
				t.Helper()
				if got, want := tr.Snapshot(), ref.snapshot(); !reflect.DeepEqual(normal(got), normal(want)) {
					for _, o := range objs {
						t.Logf("%s\n got %+v\nwant %+v", o, got[o], want[o])
					}
					t.Fatalf("%s: objects differ", step)
				}
				if got := tr.Counters(); !reflect.DeepEqual(got, ref.c) {
					t.Fatalf("%s: counters %+v, want %+v", step, got, ref.c)
				}
				for _, o := range objs {
					a, b := tr.objs[o], ref.objs[o]
					if a == nil || b == nil {
						continue
					}
					if a.inflight.len() != len(b.inflight) {
						t.Fatalf("%s: %s holds %d records, reference %d", step, o, a.inflight.len(), len(b.inflight))
					}
					for r, want := range b.inflight {
						if got, ok := a.inflight.get(r); !ok || got != want {
							t.Fatalf("%s: %s record %d mark %v,%v want %v", step, o, r, got, ok, want)
						}
					}
				}
			}
			for phase := range 3 {
				if phase > 0 {
					// Crash and resume: records in flight are lost, the
					// settled ones above the watermark make gaps.
					var st State
					tr.Fill(&st, nil)
					data, err := Marshal(&st)
					if err != nil {
						t.Fatal(err)
					}
					loaded, err := Unmarshal(data)
					if err != nil {
						t.Fatal(err)
					}
					tr, ref = NewTracker(loaded), newRefTracker(loaded)
				}
				next := map[string]int64{}
				for _, o := range objs {
					next[o] = tr.Begin(o, "").Resume.Record
					ref.get(o)
				}
				var (
					inflight []backfill.Event
					strag    []backfill.Event
					settled  []backfill.Event
					window   = 1 + rng.IntN(1500)
					stop     = rng.IntN(400) + 100 // steps before the crash
				)
				for step := range stop {
					name := fmt.Sprintf("phase %d step %d", phase, step)
					// Read: objects interleaved in runs.
					for len(inflight) < window {
						o := objs[rng.IntN(len(objs))]
						if next[o] > total[o] {
							if !slices.ContainsFunc(objs, func(o string) bool { return next[o] <= total[o] }) {
								break
							}
							continue
						}
						for range 1 + rng.IntN(50) {
							if next[o] == total[o] {
								tr.EOF(o, total[o])
								ref.EOF(o, total[o])
								next[o]++
								break
							}
							p := posOf(o, next[o])
							next[o]++
							skip := tr.Read(p)
							if want := ref.Read(p); skip != want {
								t.Fatalf("%s: Read(%s %d)=%v want %v", name, o, p.Record, skip, want)
							}
							if skip {
								continue
							}
							if rng.IntN(1000) == 0 {
								strag = append(strag, backfill.Event{Pos: p})
							} else {
								inflight = append(inflight, backfill.Event{Pos: p})
							}
						}
					}
					if rng.IntN(100) == 0 {
						// A reader goes back a little (records in flight
						// read again, out of order).
						o := objs[rng.IntN(len(objs))]
						if n := next[o]; n > 0 && n <= total[o] {
							for r := max(0, n-int64(rng.IntN(40))); r < n; r++ {
								p := posOf(o, r)
								if skip := tr.Read(p); skip != ref.Read(p) {
									t.Fatalf("%s: reread Read(%s %d)=%v", name, o, r, skip)
								}
							}
						}
					}
					// Settle a random batch in random order.
					var batch []backfill.Event
					for range rng.IntN(min(len(inflight), 2000) + 1) {
						switch {
						case rng.IntN(30) == 0 && len(settled) > 0:
							batch = append(batch, settled[rng.IntN(len(settled))])
						case rng.IntN(30) == 0 && len(batch) > 0:
							batch = append(batch, batch[rng.IntN(len(batch))])
						default:
							i := rng.IntN(len(inflight))
							batch = append(batch, inflight[i])
							inflight[i] = inflight[len(inflight)-1]
							inflight = inflight[:len(inflight)-1]
						}
						if len(inflight) == 0 {
							break
						}
					}
					if len(strag) > 0 && rng.IntN(150) == 0 {
						batch = append(batch, strag[0])
						strag = strag[1:]
					}
					want := 0
					for _, e := range batch {
						if ref.Settle(e.Pos) {
							want++
						}
					}
					got := 0
					if rng.IntN(2) == 0 {
						idx := make([]int, len(batch))
						for i := range idx {
							idx[i] = i
						}
						got = tr.SettleEvents(batch, idx, Accepted)
					} else {
						for _, e := range batch {
							if tr.Settle(e.Pos, Accepted) {
								got++
							}
						}
					}
					if got != want {
						t.Fatalf("%s: settled %d, reference %d", name, got, want)
					}
					settled = append(settled, batch...)
					if len(settled) > 4000 {
						settled = settled[len(settled)-1000:]
					}
					compare(name)
				}
			}
		})
	}
}

func (t *refTracker) snapshot() map[string]*Object {
	m := map[string]*Object{}
	for url, tr := range t.objs {
		m[url] = tr.obj.clone()
	}
	return m
}

// normal returns objects with empty range sets as nil.
func normal(m map[string]*Object) map[string]*Object {
	m = maps.Clone(m)
	for url, o := range m {
		if len(o.Settled) == 0 {
			c := *o
			c.Settled = nil
			m[url] = &c
		}
	}
	return m
}

// A straggler (a record left unsettled while millions are read after it)
// does not make the tracker keep the records read after it: what it holds
// stays bounded by the records in flight.
func TestTrackerMemoryBoundedStraggler(t *testing.T) {
	const (
		window = 3000
		n      = 600_000
		obj    = "o"
	)
	tr := NewTracker(nil)
	p := func(r int64) backfill.Position {
		return backfill.Position{Object: obj, Record: r, Offset: r * 3, Line: r + 1}
	}
	tr.Read(p(0)) // the straggler
	evs := make([]backfill.Event, 0, window)
	idx := make([]int, 0, window)
	rng := rand.New(rand.NewPCG(3, 4))
	maxEntries, maxCap := 0, 0
	for r := int64(1); r < n; r++ {
		tr.Read(p(r))
		evs = append(evs, backfill.Event{Pos: p(r)})
		if len(evs) < window {
			continue
		}
		// Settle the window in two halves, in random order: half of it
		// stays in flight while the next window is read.
		rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		idx = idx[:0]
		for i := range window / 2 {
			idx = append(idx, i)
		}
		tr.SettleEvents(evs, idx, Accepted)
		evs = append(evs[:0], evs[window/2:]...)
		s := &tr.objs[obj].inflight
		if got, want := s.len(), window/2+1; got != want {
			t.Fatalf("record %d: %d records held, %d in flight", r, got, want)
		}
		maxEntries = max(maxEntries, s.entries())
		maxCap = max(maxCap, cap(s.q))
	}
	if bound := max(minPending, 4*(window+1)); maxCap > bound || maxEntries > bound {
		t.Fatalf("up to %d entries (storage %d) with at most %d records in flight, want at most %d", maxEntries, maxCap, window+1, bound)
	}
	if o := tr.Snapshot()[obj]; o.Watermark != 0 || o.ResumeRecord != 0 {
		t.Fatalf("watermark %d resume %d, want 0 behind the straggler", o.Watermark, o.ResumeRecord)
	}
	// The straggler settles: the watermark jumps to the oldest record in
	// flight, with its exact resume point.
	tr.Settle(p(0), Accepted)
	idx = idx[:0]
	for i := range evs {
		idx = append(idx, i)
	}
	low := slices.MinFunc(evs, func(a, b backfill.Event) int { return int(a.Pos.Record - b.Pos.Record) }).Pos
	o := tr.Snapshot()[obj]
	if o.Watermark != low.Record || o.ResumeRecord != low.Record || o.ResumeOffset != low.Offset {
		t.Fatalf("after the straggler: watermark %d resume %d@%d, want %d@%d", o.Watermark, o.ResumeRecord, o.ResumeOffset, low.Record, low.Offset)
	}
	tr.SettleEvents(evs, idx, Accepted)
	tr.EOF(obj, n)
	if o, s := tr.Snapshot()[obj], &tr.objs[obj].inflight; !o.Done || s.entries() != 0 || s.q != nil {
		t.Fatalf("done=%v, %d entries left", o.Done, s.entries())
	}
}

// addRange inserts the single record x (not in rs) into the sorted,
// merged range set rs, merging with neighbours: the reference's range set,
// the tracker's before settledSet.
func addRange(rs [][2]int64, x int64) [][2]int64 {
	i := sort.Search(len(rs), func(i int) bool { return rs[i][0] > x })
	joinLeft := i > 0 && rs[i-1][1] == x
	joinRight := i < len(rs) && rs[i][0] == x+1
	switch {
	case joinLeft && joinRight:
		rs[i-1][1] = rs[i][1]
		return slices.Delete(rs, i, i+1)
	case joinLeft:
		rs[i-1][1] = x + 1
		return rs
	case joinRight:
		rs[i][0] = x
		return rs
	default:
		return slices.Insert(rs, i, [2]int64{x, x + 1})
	}
}

// TestMarkRoundTrip checks that a mark keeps what a resume needs of the
// positions the readers produce: text (offset, line) and Parquet (row
// group, row, no offset).
func TestMarkRoundTrip(t *testing.T) {
	for _, p := range []backfill.Position{
		{Offset: 0, Line: 1},
		{Offset: 1 << 40, Line: 1 << 33},
		{Offset: -1, RowGroup: 0, Row: 0},
		{Offset: -1, RowGroup: 7, Row: 131071},
	} {
		var o Object
		markOf(p).set(&o)
		got := backfill.Position{Offset: o.ResumeOffset, Line: o.ResumeLine, RowGroup: o.ResumeRowGroup, Row: o.ResumeRow}
		if got != p {
			t.Errorf("markOf(%+v) resumes at %+v", p, got)
		}
	}
}
