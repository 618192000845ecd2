package checkpoint_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/deadletter"
)

// TestResumeWithDeadLetter runs the checkpoint recipe of the package doc:
// records settle out of order, every third one is rejected to the
// dead-letter file, checkpoints are saved now and then, and the run is
// "killed" twice (in-flight work and unsaved progress lost). In the end every
// record is settled once, the counters are exact and the dead-letter file
// holds each rejected record exactly once.
func TestResumeWithDeadLetter(t *testing.T) {
	const n = 300
	ctx := context.Background()
	dir := t.TempDir()
	dlPath := filepath.Join(dir, "dead.jsonl")
	rng := rand.New(rand.NewPCG(3, 4))
	store, err := checkpoint.Open(ctx, filepath.Join(dir, "ckpt"), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	accepted := map[int64]int{} // server-side view: sends per record

	for run := 0; ; run++ {
		lock, err := store.Lock(ctx, checkpoint.LockOptions{})
		if err != nil {
			t.Fatal(err)
		}
		loaded, err := store.Load(ctx)
		if err != nil && err != checkpoint.ErrNoCheckpoint {
			t.Fatal(err)
		}
		size := int64(0)
		if loaded != nil {
			size = loaded.DeadLetterSize
		}
		dl, err := deadletter.Open(dlPath, size)
		if err != nil {
			t.Fatal(err)
		}
		tr := checkpoint.NewTracker(loaded)
		start := tr.Begin(obj, "fp")
		save := func() {
			st := checkpoint.State{Job: "job", RunCount: run + 1}
			tr.Fill(&st, func(s *checkpoint.State) { s.DeadLetterSize = dl.Size() })
			if _, err := dl.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := store.Save(ctx, &st); err != nil {
				t.Fatal(err)
			}
		}
		var inflight []int64
		next := start.Resume.Record
		killAt := -1
		if run < 2 {
			killAt = 40 + rng.IntN(100)
		}
		killed := false
		for step := 0; !start.Done; step++ {
			for len(inflight) < 16 && next < n {
				if !tr.Read(pos(next)) {
					inflight = append(inflight, next)
				}
				next++
			}
			if next == n {
				tr.EOF(obj, n)
			}
			if len(inflight) == 0 {
				break
			}
			i := rng.IntN(len(inflight))
			r := inflight[i]
			inflight = slices.Delete(inflight, i, i+1)
			if r%3 == 0 {
				if _, err := tr.SettleWith(pos(r), checkpoint.Rejected, func() error {
					return dl.Write(entry(r))
				}); err != nil {
					t.Fatal(err)
				}
			} else {
				accepted[r]++
				tr.Settle(pos(r), checkpoint.Accepted)
			}
			if step%25 == 0 {
				save()
			}
			if step == killAt {
				killed = true
				break
			}
		}
		if killed {
			// kill -9: buffered dead-letter lines may or may not reach the
			// file; make the worst case happen (they do).
			dl.Sync()
			dl.Close()
			lock.Release(ctx)
			continue
		}
		save()
		dl.Close()
		lock.Release(ctx)
		break
	}

	st, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o := st.Objects[obj]
	if !o.Done || !st.Complete || st.Counters.EventsRead != n || o.Rejected != n/3 || o.Accepted != n-n/3 {
		t.Fatalf("final object %+v counters %+v", o, st.Counters)
	}
	es, err := deadletter.ReadAll(dlPath)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]int{}
	for _, e := range es {
		seen[e.Record]++
	}
	for r := int64(0); r < n; r += 3 {
		if seen[r] != 1 {
			t.Fatalf("record %d dead-lettered %d times (file has %d lines)", r, seen[r], len(es))
		}
	}
	if len(es) != n/3 {
		t.Fatalf("%d dead-letter lines, want %d", len(es), n/3)
	}
	for r := int64(0); r < n; r++ {
		if r%3 != 0 && accepted[r] == 0 {
			t.Fatalf("record %d never sent", r)
		}
	}
}

func entry(r int64) deadletter.Entry {
	return deadletter.NewEntry(pos(r), deadletter.StageValidate, "bad", []byte(fmt.Sprintf(`{"r":%d}`, r)))
}
