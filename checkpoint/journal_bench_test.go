package checkpoint_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
)

// BenchmarkJournal measures what the journal costs a lane per request of
// 2,000 events: Sent, Wait (one group commit with fsync, shared by the
// lanes waiting) and Acked, with 16 lanes at once on a local directory.
// Reported per event.
func BenchmarkJournal(b *testing.B) {
	// objects=200: a request of a bucket of tiny objects, whose events
	// interleave hundreds of objects (the journal once looked each one up
	// in a list, a quadratic that took a quarter of such a run's CPU).
	for _, c := range []struct{ lanes, objects int }{{1, 1}, {16, 1}, {16, 200}} {
		lanes := c.lanes
		b.Run(fmt.Sprintf("lanes=%d/objects=%d", lanes, c.objects), func(b *testing.B) {
			ctx := context.Background()
			store, err := checkpoint.Open(ctx, b.TempDir(), checkpoint.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			st := &checkpoint.State{}
			tr := checkpoint.NewTracker(st)
			j, _, err := store.OpenJournal(ctx, st, tr, checkpoint.JournalOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			const batch = 2000
			reqs := make([][]backfill.Event, lanes)
			for l := range reqs {
				for i := range batch {
					obj := fmt.Sprintf("file:///in/bucket/prefix/part-%05d.jsonl", i%c.objects)
					reqs[l] = append(reqs[l], backfill.Event{Pos: backfill.Position{Object: obj, Record: int64(i*lanes + l)}})
				}
			}
			acc := make([]int, batch)
			for i := range acc {
				acc[i] = i
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/lanes + 1
			for l := range lanes {
				wg.Go(func() {
					for range per {
						j.Sent(l, reqs[l])
						if err := j.Wait(ctx); err != nil {
							b.Error(err)
							return
						}
						j.Acked(l, acc)
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(per*lanes*batch), "ns/event")
		})
	}
}
