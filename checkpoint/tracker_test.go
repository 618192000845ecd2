package checkpoint_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
)

const obj = "s3://bucket/events/part-1.jsonl"

// pos returns record r of obj with a deterministic offset and line.
func pos(r int64) backfill.Position {
	return backfill.Position{Object: obj, Record: r, Offset: r*100 + 7, Line: r + 1}
}

// model is the obviously-correct reference: the set of settled records.
type model struct {
	settled map[int64]bool
	n       int64
}

func (m *model) minUnsettled() int64 {
	for r := int64(0); r < m.n; r++ {
		if !m.settled[r] {
			return r
		}
	}
	return m.n
}

// ranges returns the settled records above the watermark as merged ranges.
func (m *model) ranges(w int64) [][2]int64 {
	var out [][2]int64
	for r := w; r < m.n; r++ {
		if !m.settled[r] {
			continue
		}
		if len(out) > 0 && out[len(out)-1][1] == r {
			out[len(out)-1][1] = r + 1
		} else {
			out = append(out, [2]int64{r, r + 1})
		}
	}
	return out
}

// checkInvariants compares the tracker's object with the model.
// maxRanges bounds the range set: the gaps between ranges are records in
// flight (or lost in flight by a crash).
func checkInvariants(t *testing.T, tr *checkpoint.Tracker, m *model, maxRanges int, step string) {
	t.Helper()
	o := tr.Snapshot()[obj]
	if o == nil {
		t.Fatalf("%s: object missing from snapshot", step)
	}
	if got, want := o.Watermark, m.minUnsettled(); got != want {
		t.Fatalf("%s: watermark=%d, want %d", step, got, want)
	}
	if got, want := o.Settled, m.ranges(o.Watermark); !slices.Equal(got, want) {
		t.Fatalf("%s: settled=%v, want %v", step, got, want)
	}
	if len(o.Settled) > maxRanges {
		t.Fatalf("%s: %d ranges, want at most %d", step, len(o.Settled), maxRanges)
	}
	if o.ResumeRecord > o.Watermark {
		t.Fatalf("%s: resume record %d above watermark %d", step, o.ResumeRecord, o.Watermark)
	}
	if o.ResumeRecord > 0 {
		if want := pos(o.ResumeRecord); o.ResumeOffset != want.Offset || o.ResumeLine != want.Line {
			t.Fatalf("%s: resume record %d at offset %d line %d, want %d/%d",
				step, o.ResumeRecord, o.ResumeOffset, o.ResumeLine, want.Offset, want.Line)
		}
	}
	if got, want := o.Read, int64(len(m.settled)); got != want {
		t.Fatalf("%s: read=%d, want %d", step, got, want)
	}
}

// TestTrackerOutOfOrderProperty reads records in order with a bounded
// in-flight window and settles them in random order, checking after every
// step that the watermark is the lowest unsettled record, the ranges are
// exactly the settled records above it, merged, and bounded by the records
// in flight. Midway it round-trips the state through JSON and resumes like
// a restarted process would (re-reading from the resume point).
func TestTrackerOutOfOrderProperty(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, seed*7919))
			n := int64(50 + rng.IntN(400))
			window := 1 + rng.IntN(64)
			reloadAt := rng.IntN(int(n))
			m := &model{settled: map[int64]bool{}, n: n}
			tr := checkpoint.NewTracker(nil)
			if s := tr.Begin(obj, "fp1"); s.Resume.Record != 0 || s.Done || s.Changed {
				t.Fatalf("fresh Begin=%+v", s)
			}
			next := int64(0) // next record the "reader" produces
			var inflight []int64
			reloaded := false
			for steps := 0; len(m.settled) < int(n); steps++ {
				// Reader: fill the window.
				for len(inflight) < window && next < n {
					skip := tr.Read(pos(next))
					if skip != m.settled[next] {
						t.Fatalf("Read(%d) skip=%v, model settled=%v", next, skip, m.settled[next])
					}
					if !skip {
						inflight = append(inflight, next)
					}
					next++
				}
				if next == n {
					tr.EOF(obj, n)
				}
				// Uploader: settle one in-flight record at random.
				i := rng.IntN(len(inflight))
				r := inflight[i]
				inflight = slices.Delete(inflight, i, i+1)
				outcome := checkpoint.Accepted
				if r%5 == 0 {
					outcome = checkpoint.Rejected
				}
				if !tr.Settle(pos(r), outcome) {
					t.Fatalf("Settle(%d) = false for an unsettled record", r)
				}
				if tr.Settle(pos(r), outcome) {
					t.Fatalf("second Settle(%d) = true", r)
				}
				m.settled[r] = true
				bound := len(inflight) + 1
				if reloaded {
					bound = window + 1
				}
				checkInvariants(t, tr, m, bound, fmt.Sprintf("step %d settle %d", steps, r))
				for _, probe := range []int64{0, r, r + 1, next - 1, next, n - 1} {
					if probe < 0 || probe >= n {
						continue
					}
					if got := tr.Skip(obj, probe); got != m.settled[probe] {
						t.Fatalf("Skip(%d)=%v, want %v", probe, got, m.settled[probe])
					}
				}

				if steps == reloadAt {
					// Crash: in-flight records are lost, state is reloaded.
					var st checkpoint.State
					tr.Fill(&st, nil)
					data, err := checkpoint.Marshal(&st)
					if err != nil {
						t.Fatal(err)
					}
					loaded, err := checkpoint.Unmarshal(data)
					if err != nil {
						t.Fatal(err)
					}
					tr = checkpoint.NewTracker(loaded)
					start := tr.Begin(obj, "fp1")
					if start.Changed {
						t.Fatal("Begin after reload: Changed")
					}
					for r := range n {
						if got := tr.Skip(obj, r); got != m.settled[r] {
							t.Fatalf("after reload Skip(%d)=%v, want %v", r, got, m.settled[r])
						}
					}
					// Every record below the resume point must be settled.
					if w := m.minUnsettled(); start.Resume.Record > w {
						t.Fatalf("resume record %d above lowest unsettled %d", start.Resume.Record, w)
					}
					if start.Resume.Record > 0 && start.Resume.Offset != pos(start.Resume.Record).Offset {
						t.Fatalf("resume %+v: wrong offset", start.Resume)
					}
					next = start.Resume.Record
					inflight = nil
					reloaded = true
					checkInvariants(t, tr, m, window+1, "after reload")
				}
			}
			o := tr.Snapshot()[obj]
			if !o.Done || o.Watermark != n || len(o.Settled) != 0 {
				t.Fatalf("final object %+v, want done at %d", o, n)
			}
			c := tr.Counters()
			if c.EventsRead != n || c.EventsAccepted+c.EventsRejected != n || o.Accepted+o.Rejected != n {
				t.Fatalf("counters %+v object %+v, want exactly %d settled", c, o, n)
			}
			if !tr.Skip(obj, n+10) {
				t.Fatal("Skip on a done object = false")
			}
		})
	}
}

func TestTrackerResumePoint(t *testing.T) {
	tests := []struct {
		name       string
		wantRecord int64
		wantOffset int64
	}{
		{name: "LastReadReread", wantRecord: 9, wantOffset: pos(9).Offset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := checkpoint.NewTracker(nil)
			tr.Begin(obj, "")
			for r := range int64(10) {
				tr.Read(pos(r))
			}
			for r := int64(9); r >= 0; r-- {
				tr.Settle(pos(r), checkpoint.Accepted)
			}
			o := tr.Snapshot()[obj]
			if o.Watermark != 10 || o.ResumeRecord != tt.wantRecord || o.ResumeOffset != tt.wantOffset {
				t.Fatalf("watermark %d resume %d@%d, want 10, %d@%d", o.Watermark, o.ResumeRecord, o.ResumeOffset, tt.wantRecord, tt.wantOffset)
			}
			// Reading the watermark record later makes the resume point exact.
			tr.Read(pos(10))
			if o := tr.Snapshot()[obj]; o.ResumeRecord != 10 || o.ResumeOffset != pos(10).Offset {
				t.Fatalf("after Read(10): resume %d@%d", o.ResumeRecord, o.ResumeOffset)
			}
		})
	}
}

func TestTrackerParquetResume(t *testing.T) {
	tr := checkpoint.NewTracker(nil)
	p := func(r int64) backfill.Position {
		return backfill.Position{Object: obj, Record: r, Offset: -1, RowGroup: int(r / 4), Row: r % 4}
	}
	for r := range int64(8) {
		tr.Read(p(r))
	}
	for r := range int64(6) {
		tr.Settle(p(r), checkpoint.Accepted)
	}
	got := tr.Snapshot()[obj].ResumePosition(obj)
	if want := p(6); got != want {
		t.Fatalf("resume=%+v, want %+v", got, want)
	}
}

func TestTrackerBegin(t *testing.T) {
	loaded := &checkpoint.State{Objects: map[string]*checkpoint.Object{
		"a": {Fingerprint: "f1", Watermark: 5, ResumeRecord: 5, ResumeOffset: 500, Total: -1, Error: "boom"},
		"b": {Fingerprint: "f1", Watermark: 3, Total: 3, Done: true},
	}}
	tests := []struct {
		name, object, fp string
		want             checkpoint.Start
	}{
		{name: "Same", object: "a", fp: "f1", want: checkpoint.Start{Resume: backfill.Position{Object: "a", Record: 5, Offset: 500}}},
		{name: "Unknown", object: "a", fp: "", want: checkpoint.Start{Resume: backfill.Position{Object: "a", Record: 5, Offset: 500}}},
		{name: "Changed", object: "a", fp: "f2", want: checkpoint.Start{Resume: backfill.Position{Object: "a", Offset: -1}, Changed: true}},
		{name: "Done", object: "b", fp: "f1", want: checkpoint.Start{Resume: backfill.Position{Object: "b"}, Done: true}},
		{name: "New", object: "c", fp: "f1", want: checkpoint.Start{Resume: backfill.Position{Object: "c", Offset: -1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := checkpoint.NewTracker(loaded)
			if got := tr.Begin(tt.object, tt.fp); got != tt.want {
				t.Fatalf("Begin=%+v, want %+v", got, tt.want)
			}
			o := tr.Snapshot()[tt.object]
			if o.Error != "" {
				t.Fatalf("Error=%q after Begin, want cleared", o.Error)
			}
			if fp, ok := tr.Fingerprint(tt.object); !ok || (tt.fp != "" && fp != tt.fp) {
				t.Fatalf("Fingerprint=%q,%v after Begin with %q", fp, ok, tt.fp)
			}
			if _, ok := tr.Fingerprint("nope"); ok {
				t.Fatal("Fingerprint of an unknown object: ok")
			}
			if tt.name == "Changed" && (o.Watermark != 0 || tr.Skip("a", 0)) {
				t.Fatalf("changed object kept its progress: %+v", o)
			}
		})
	}
	// NewTracker copies: the loaded state is never modified.
	if loaded.Objects["a"].Error != "boom" || loaded.Objects["a"].Fingerprint != "f1" {
		t.Fatalf("loaded state modified: %+v", loaded.Objects["a"])
	}
}

func TestTrackerSettleWith(t *testing.T) {
	tr := checkpoint.NewTracker(nil)
	tr.Read(pos(0))
	errWrite := fmt.Errorf("disk full")
	if ok, err := tr.SettleWith(pos(0), checkpoint.Rejected, func() error { return errWrite }); ok || err != errWrite {
		t.Fatalf("SettleWith failing fn = %v, %v", ok, err)
	}
	if tr.Skip(obj, 0) {
		t.Fatal("record settled although fn failed")
	}
	calls := 0
	fn := func() error { calls++; return nil }
	for range 2 {
		tr.SettleWith(pos(0), checkpoint.Rejected, fn)
	}
	if calls != 1 {
		t.Fatalf("fn called %d times, want 1 (not for an already settled record)", calls)
	}
	if c := tr.Counters(); c.EventsRejected != 1 || c.EventsRead != 1 {
		t.Fatalf("counters %+v", c)
	}
}

func TestTrackerFillFailComplete(t *testing.T) {
	tr := checkpoint.NewTracker(nil)
	tr.Begin("a", "")
	tr.Begin("b", "")
	tr.Read(backfill.Position{Object: "a", Record: 0})
	tr.Settle(backfill.Position{Object: "a", Record: 0}, checkpoint.Filtered)
	tr.EOF("a", 1)
	tr.Fail("b", fmt.Errorf("truncated gzip"))
	tr.AddCounters(checkpoint.Counters{RequestsBatch: 2, Extra: map[string]int64{"parked": 1}})
	var st checkpoint.State
	var hookSaw int
	tr.Fill(&st, func(s *checkpoint.State) { hookSaw = len(s.Objects); s.DeadLetterSize = 42 })
	if hookSaw != 2 || st.DeadLetterSize != 42 {
		t.Fatalf("hook saw %d objects, size %d", hookSaw, st.DeadLetterSize)
	}
	if st.Complete {
		t.Fatal("Complete with object b failed")
	}
	if !st.Objects["a"].Done || st.Objects["a"].Filtered != 1 || st.Objects["b"].Error != "truncated gzip" {
		t.Fatalf("objects %+v %+v", st.Objects["a"], st.Objects["b"])
	}
	if st.Counters.RequestsBatch != 2 || st.Counters.Extra["parked"] != 1 || st.Counters.EventsFiltered != 1 {
		t.Fatalf("counters %+v", st.Counters)
	}
	// The snapshot is a deep copy.
	st.Counters.Extra["parked"] = 99
	st.Objects["a"].Watermark = 99
	if tr.Counters().Extra["parked"] != 1 || tr.Snapshot()["a"].Watermark != 1 {
		t.Fatal("Fill returned shared memory")
	}
	tr.Begin("b", "")
	tr.EOF("b", 0)
	tr.Fill(&st, nil)
	if !st.Complete {
		t.Fatal("Complete=false with all objects done")
	}
}

// TestTrackerConcurrent settles from several goroutines while snapshots
// are taken; every snapshot must be internally consistent (the counters
// equal the settled records) and the final state complete.
func TestTrackerConcurrent(t *testing.T) {
	const n, workers = 4000, 4
	tr := checkpoint.NewTracker(nil)
	for r := range int64(n) {
		tr.Read(pos(r))
	}
	tr.EOF(obj, n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := int64(n - 1 - w); r >= 0; r -= workers { // descending: worst case for ranges
				tr.Settle(pos(r), checkpoint.Accepted)
			}
		})
	}
	done := make(chan struct{})
	var snapErr error
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			var st checkpoint.State
			tr.Fill(&st, nil)
			o := st.Objects[obj]
			settled := o.Watermark
			for _, r := range o.Settled {
				settled += r[1] - r[0]
			}
			if settled != st.Counters.EventsAccepted || settled != o.Read {
				snapErr = fmt.Errorf("snapshot: %d settled positions, counters %d/%d", settled, st.Counters.EventsAccepted, o.Read)
				return
			}
		}
	}()
	wg.Wait()
	<-done
	if snapErr != nil {
		t.Fatal(snapErr)
	}
	if o := tr.Snapshot()[obj]; !o.Done || o.Accepted != n {
		t.Fatalf("final %+v", o)
	}
}

// TestTrackerForeign: records of other shards settle the watermark without
// counting as read.
func TestTrackerForeign(t *testing.T) {
	tr := checkpoint.NewTracker(nil)
	tr.Begin("mem://a", "fp")
	for i := range int64(4) {
		tr.Read(backfill.Position{Object: "mem://a", Record: i})
	}
	tr.Settle(backfill.Position{Object: "mem://a", Record: 0}, checkpoint.Foreign)
	tr.Settle(backfill.Position{Object: "mem://a", Record: 1}, checkpoint.Accepted)
	tr.Settle(backfill.Position{Object: "mem://a", Record: 3}, checkpoint.Foreign)
	tr.Settle(backfill.Position{Object: "mem://a", Record: 2}, checkpoint.Rejected)
	tr.EOF("mem://a", 4)
	var st checkpoint.State
	tr.Fill(&st, nil)
	o, c := st.Objects["mem://a"], st.Counters
	if !o.Done || o.Watermark != 4 || o.Read != 2 || o.Foreign != 2 {
		t.Errorf("object %+v, want done, watermark 4, read 2, foreign 2", o)
	}
	if c.EventsRead != 2 || c.EventsAccepted != 1 || c.EventsRejected != 1 || c.EventsForeign != 2 {
		t.Errorf("counters %+v", c)
	}
}
