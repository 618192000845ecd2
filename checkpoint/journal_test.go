package checkpoint_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
)

// journalRun is one run of a job against a store: its state, tracker and
// journal, as job.Run wires them.
type journalRun struct {
	t     *testing.T
	store *checkpoint.Store
	state *checkpoint.State
	tr    *checkpoint.Tracker
	j     *checkpoint.Journal
	rep   checkpoint.Replayed
}

func startRun(t *testing.T, store *checkpoint.Store) *journalRun {
	t.Helper()
	ctx := context.Background()
	st, err := store.Load(ctx)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	tr := checkpoint.NewTracker(st)
	j, rep, err := store.OpenJournal(ctx, st, tr, checkpoint.JournalOptions{})
	if err != nil {
		t.Fatalf("open journal: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return &journalRun{t: t, store: store, state: st, tr: tr, j: j, rep: rep}
}

func (r *journalRun) save() *checkpoint.State {
	r.t.Helper()
	st := *r.state
	r.tr.Fill(&st, r.j.Compact)
	if err := r.store.Save(context.Background(), &st); err != nil {
		r.t.Fatal(err)
	}
	if err := r.j.Saved(context.Background(), &st); err != nil {
		r.t.Fatal(err)
	}
	return &st
}

// send records evs as lane's request, waits for it to be durable and, when
// accepted is not nil, settles those and records the acknowledgement.
func (r *journalRun) send(lane int, evs []backfill.Event, accepted []int) {
	r.t.Helper()
	r.j.Sent(lane, evs)
	if err := r.j.Wait(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	if accepted == nil {
		return // in flight at the kill
	}
	r.tr.SettleEvents(evs, accepted, checkpoint.Accepted)
	r.j.Acked(lane, accepted)
}

// sync makes everything recorded durable, as the other lanes' Waits do.
func (r *journalRun) sync() {
	r.t.Helper()
	if err := r.j.Wait(context.Background()); err != nil {
		r.t.Fatal(err)
	}
}

func events(obj string, from, to int64) []backfill.Event {
	var evs []backfill.Event
	for r := from; r < to; r++ {
		evs = append(evs, backfill.Event{Pos: backfill.Position{Object: obj, Record: r}})
	}
	return evs
}

func all(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

func openStores(t *testing.T) map[string]func() *checkpoint.Store {
	dir := t.TempDir()
	bucket := memblob.OpenBucket(nil)
	t.Cleanup(func() { bucket.Close() })
	open := func(loc string, opts checkpoint.Options) func() *checkpoint.Store {
		return func() *checkpoint.Store {
			s, err := checkpoint.Open(context.Background(), loc, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	}
	return map[string]func() *checkpoint.Store{
		"local":  open(dir, checkpoint.Options{}),
		"bucket": open("mem://", checkpoint.Options{Bucket: bucket, Name: "shard-0-of-2"}),
	}
}

// TestJournalKill runs a job, "kills" it with requests acknowledged since
// the last save and one in flight, and checks what the next runs resume
// from: every acknowledged record settled, only the request in flight sent
// again and counted as re-sent once, compacted generations removed.
func TestJournalKill(t *testing.T) {
	const o1, o2 = "file:///in/a.jsonl", "file:///in/b.jsonl"
	for name, open := range openStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			store := open()
			if err := store.Save(ctx, &checkpoint.State{Started: time.Now()}); err != nil {
				t.Fatal(err)
			}
			r1 := startRun(t, store)
			if r1.rep.Generations != 0 {
				t.Fatalf("fresh job replayed %d generations", r1.rep.Generations)
			}
			r1.tr.Begin(o1, "fp-a")
			r1.tr.Begin(o2, "fp-b")
			for i := int64(0); i < 40; i++ {
				r1.tr.Read(backfill.Position{Object: o1, Record: i})
				r1.tr.Read(backfill.Position{Object: o2, Record: i})
			}
			r1.send(0, events(o1, 0, 10), all(10))
			r1.save()
			mixed := append(events(o1, 10, 15), events(o2, 0, 5)...)
			r1.send(1, mixed, []int{0, 2, 4, 5, 9}) // the others were throttled, say
			r1.send(2, events(o1, 20, 30), all(10))
			r1.send(3, events(o2, 10, 20), nil) // in flight at the kill
			// kill: r1 is abandoned without Close or a final save.

			r2 := startRun(t, open())
			if got, want := r2.rep.Settled, int64(5+10); got != want {
				t.Errorf("replay settled %d records, want %d", got, want)
			}
			if r2.rep.Runs != 0 {
				t.Errorf("replay found %d runs that ended without a save, want 0 (the first one saved)", r2.rep.Runs)
			}
			if got, want := r2.rep.Crashed, 10; got != want {
				t.Errorf("replay found %d records in flight at the kill, want %d", got, want)
			}
			// Sent again: the 10 in flight and the 5 answered without
			// being accepted.
			if got, want := r2.rep.Resend, 15; got != want {
				t.Errorf("replay counts %d records to send again, want %d", got, want)
			}
			for _, c := range []struct {
				obj  string
				rec  int64
				skip bool
			}{{o1, 5, true}, {o1, 10, true}, {o1, 11, false}, {o1, 12, true}, {o1, 25, true}, {o2, 0, true}, {o2, 1, false}, {o2, 4, true}, {o2, 15, false}} {
				if got := r2.tr.Skip(c.obj, c.rec); got != c.skip {
					t.Errorf("after replay, %s record %d settled = %v, want %v", c.obj, c.rec, got, c.skip)
				}
			}
			if fp, _ := r2.tr.Fingerprint(o2); fp != "fp-b" {
				t.Errorf("object declared by the journal has fingerprint %q, want fp-b", fp)
			}
			// The next run sends the request that was in flight again, and
			// some other records; only the first count as re-sent.
			r2.send(0, events(o2, 10, 20), nil)
			r2.send(1, events(o1, 11, 12), all(1))
			if got := r2.j.Resent(); got != 10 {
				t.Errorf("re-sent %d after the kill, want 10", got)
			}
			st := r2.save()
			if st.Counters.EventsResent != 10 || st.JournalGen <= 1 {
				t.Errorf("saved state: events_resent %d, journal_gen %d", st.Counters.EventsResent, st.JournalGen)
			}
			r2.send(0, nil, []int{}) // settle the lane's request: nothing accepted
			r2.send(2, events(o2, 30, 35), all(5))
			r2.sync()
			// killed again: the restated request of lane 0 had settled, so
			// nothing is in flight but what was sent after the save.
			r3 := startRun(t, open())
			if r3.rep.Crashed != 0 || r3.rep.Resent != 0 || r3.rep.Settled != 5 {
				t.Errorf("second replay: crashed %d, resent %d, settled %d; want 0, 0, 5", r3.rep.Crashed, r3.rep.Resent, r3.rep.Settled)
			}
			st = r3.save()
			if st.Counters.EventsResent != 10 {
				t.Errorf("events_resent %d after a second kill, want still 10", st.Counters.EventsResent)
			}
			if err := r3.j.Close(); err != nil {
				t.Fatal(err)
			}
			// A run killed before it saved anything is counted by the
			// next one.
			startRun(t, open()).sync()
			if r := startRun(t, open()); r.rep.Runs != 1 {
				t.Errorf("replay found %d runs that ended without a save, want 1", r.rep.Runs)
			}
			rec, _, err := open().Recover(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := rec.Objects[o1].Accepted+rec.Objects[o2].Accepted, int64(10+5+1+10+5); got != want {
				t.Errorf("recovered state holds %d accepted records, want %d", got, want)
			}
		})
	}
}

// TestJournalCompaction checks that saves remove the generations neither
// the newest nor the previous state needs, and that a state falling back to
// the previous one still finds its journal.
func TestJournalCompaction(t *testing.T) {
	const o = "file:///in/c.jsonl"
	dir := t.TempDir()
	ctx := context.Background()
	store, err := checkpoint.Open(ctx, dir, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Save(ctx, &checkpoint.State{}); err != nil {
		t.Fatal(err)
	}
	r := startRun(t, store)
	r.tr.Begin(o, "fp")
	for i := int64(0); i < 100; i++ {
		r.tr.Read(backfill.Position{Object: o, Record: i})
	}
	var gens []int64
	for i := range int64(5) {
		r.send(0, events(o, i*10, i*10+10), all(10))
		gens = append(gens, r.save().JournalGen)
	}
	r.send(0, events(o, 50, 60), all(10))
	r.sync()
	logs, _ := filepath.Glob(filepath.Join(dir, "journal-*.log"))
	if len(logs) > 3 {
		t.Errorf("%d journal files after 5 saves, want at most 3 (previous, newest, current): %v", len(logs), logs)
	}
	// The newest state is damaged: Load falls back to the previous one,
	// whose journal generations still hold everything acknowledged since.
	if err := os.WriteFile(filepath.Join(dir, checkpoint.StateFile), []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec, rep, err := store.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rec.JournalGen != gens[3] {
		t.Errorf("fell back to a state of generation %d, want %d", rec.JournalGen, gens[3])
	}
	if got := rec.Objects[o].Watermark; got != 60 {
		t.Errorf("watermark %d after falling back and replaying %d generations, want 60", got, rep.Generations)
	}
}

// TestJournalFallbackResend: after Load falls back to the previous state,
// the journal says exactly how many records are sent again: those the
// server refused after the previous save (dead-lettered in the newest
// state only), and none of those it accepted.
func TestJournalFallbackResend(t *testing.T) {
	const o = "file:///in/d.jsonl"
	for _, corrupt := range []bool{false, true} {
		t.Run(fmt.Sprintf("corrupt=%v", corrupt), func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			store, err := checkpoint.Open(ctx, dir, checkpoint.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			if err := store.Save(ctx, &checkpoint.State{}); err != nil {
				t.Fatal(err)
			}
			r := startRun(t, store)
			r.tr.Begin(o, "fp")
			for i := int64(0); i < 40; i++ {
				r.tr.Read(backfill.Position{Object: o, Record: i})
			}
			r.send(0, events(o, 0, 10), all(10))
			r.save() // the previous state
			evs := events(o, 10, 20)
			r.send(0, evs, []int{0, 1}) // 8 refused: dead-lettered
			for _, ev := range evs[2:] {
				r.tr.Settle(ev.Pos, checkpoint.Rejected)
			}
			r.send(1, events(o, 20, 30), all(10))
			r.save() // the newest state
			r.send(0, events(o, 30, 40), all(10))
			r.sync()
			if corrupt {
				if err := os.WriteFile(filepath.Join(dir, checkpoint.StateFile), []byte("{garbage"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r2 := startRun(t, store)
			if r2.state.FellBack != corrupt {
				t.Fatalf("fell back %v, want %v", r2.state.FellBack, corrupt)
			}
			want := 0
			if corrupt {
				want = 8
			}
			if r2.rep.Resend != want || r2.rep.Crashed != 0 {
				t.Errorf("replay counts %d to send again (%d in flight), want %d and 0", r2.rep.Resend, r2.rep.Crashed, want)
			}
		})
	}
}

// TestJournalTorn cuts the last frame of a local generation short (a kill
// during a write) and damages one: replay stops there without an error.
func TestJournalTorn(t *testing.T) {
	const o = "file:///in/d.jsonl"
	for _, cut := range []string{"short", "flipped"} {
		t.Run(cut, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			store, err := checkpoint.Open(ctx, dir, checkpoint.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			if err := store.Save(ctx, &checkpoint.State{}); err != nil {
				t.Fatal(err)
			}
			r := startRun(t, store)
			r.tr.Begin(o, "")
			r.send(0, events(o, 0, 10), all(10))
			r.send(1, events(o, 10, 20), all(10))
			r.sync()
			logs, _ := filepath.Glob(filepath.Join(dir, "journal-*.log"))
			if len(logs) != 1 {
				t.Fatalf("journal files %v, want one", logs)
			}
			data, err := os.ReadFile(logs[0])
			if err != nil {
				t.Fatal(err)
			}
			// The last frame holds lane 1's acknowledgement.
			if cut == "short" {
				data = data[:len(data)-1]
			} else {
				data[len(data)-1] ^= 0xff
			}
			if err := os.WriteFile(logs[0], data, 0o644); err != nil {
				t.Fatal(err)
			}
			r2 := startRun(t, store)
			if !r2.rep.Torn {
				t.Error("replay did not report the damaged frame")
			}
			if r2.rep.Settled != 10 || r2.rep.Crashed != 10 {
				t.Errorf("replay settled %d and found %d in flight, want 10 and 10 (lane 1's ack was in the damaged frame)", r2.rep.Settled, r2.rep.Crashed)
			}
		})
	}
}

// TestJournalRecent checks that a commit records the budgets' recent sends
// when they changed, and that the state and the replay return the newest.
func TestJournalRecent(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	store, err := checkpoint.Open(ctx, dir, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Save(ctx, &checkpoint.State{}); err != nil {
		t.Fatal(err)
	}
	r := startRun(t, store)
	recent := []checkpoint.IDSends{{Route: "batch", Kind: "device", ID: "dev-1", Sends: [][2]int64{{1700000000, 300}, {1700000003, 20}}}}
	r.j.SetRecent(func(dst []checkpoint.IDSends) []checkpoint.IDSends { return append(dst, recent...) })
	if err := r.j.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	r2 := startRun(t, store)
	if !slices.EqualFunc(r2.rep.Recent, recent, func(a, b checkpoint.IDSends) bool {
		return a.Route == b.Route && a.Kind == b.Kind && a.ID == b.ID && slices.Equal(a.Sends, b.Sends)
	}) {
		t.Errorf("replayed recent sends %+v, want %+v", r2.rep.Recent, recent)
	}
	if r2.rep.LastActive.IsZero() {
		t.Error("replay has no last activity time")
	}
	r2.j.SetRecent(func(dst []checkpoint.IDSends) []checkpoint.IDSends { return append(dst, recent[0], recent[0]) })
	if st := r2.save(); len(st.Recent) != 2 {
		t.Errorf("saved state holds %d recent entries, want 2", len(st.Recent))
	}
}

// TestJournalLostLock has a run that lost its bucket lock go on writing
// while the run that took the lock over writes the same generation number:
// each run's parts are its own, so the replay settles exactly what each
// had acknowledged.
func TestJournalLostLock(t *testing.T) {
	const oa, ob = "file:///in/a.jsonl", "file:///in/b.jsonl"
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	ctx := context.Background()
	store, err := checkpoint.Open(ctx, "mem://", checkpoint.Options{Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Save(ctx, &checkpoint.State{}); err != nil {
		t.Fatal(err)
	}
	old := startRun(t, store)
	old.tr.Begin(oa, "fp-a")
	old.send(0, events(oa, 0, 5), all(5))
	old.sync()
	taker := startRun(t, store)
	taker.tr.Begin(ob, "fp-b")
	st := *old.state
	old.tr.Fill(&st, old.j.Compact) // the old run's generation now matches the taker's
	old.send(1, events(oa, 5, 10), all(5))
	old.sync()
	taker.send(0, events(ob, 0, 7), all(7))
	taker.sync()
	rec, _, err := store.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := rec.Objects[oa], rec.Objects[ob]; a == nil || b == nil || a.Watermark != 10 || b.Watermark != 7 {
		t.Errorf("recovered watermarks: %+v, %+v; want 10 for %s and 7 for %s", a, b, oa, ob)
	}
}

// TestJournalManyObjects sends requests spanning many small objects while
// saves compact the journal concurrently: each object is declared with its
// fingerprint, and nothing deadlocks (Compact runs under the tracker's
// lock and takes the journal's; Sent takes them the other way round only
// one at a time).
func TestJournalManyObjects(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	store, err := checkpoint.Open(ctx, dir, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Save(ctx, &checkpoint.State{}); err != nil {
		t.Fatal(err)
	}
	r := startRun(t, store)
	var evs []backfill.Event
	for o := range 40 {
		url := fmt.Sprintf("file:///in/small-%02d.jsonl", o)
		r.tr.Begin(url, "fp-"+url)
		evs = append(evs, events(url, 0, 3)...)
	}
	done := make(chan struct{})
	var saves sync.WaitGroup
	saves.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				r.save()
			}
		}
	})
	for i := range 20 {
		r.send(i%4, evs, nil)
		r.tr.SettleEvents(evs, all(len(evs)), checkpoint.Accepted)
		r.j.Acked(i%4, all(len(evs)))
	}
	close(done)
	saves.Wait()
	r.sync()
	r2 := startRun(t, store)
	for o := range 40 {
		url := fmt.Sprintf("file:///in/small-%02d.jsonl", o)
		if fp, _ := r2.tr.Fingerprint(url); fp != "fp-"+url || !r2.tr.Skip(url, 2) {
			t.Errorf("%s: fingerprint %q, record 2 settled %v after replay", url, fp, r2.tr.Skip(url, 2))
		}
	}
}
