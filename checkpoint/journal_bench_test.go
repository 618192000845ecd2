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
	for _, lanes := range []int{1, 16} {
		b.Run(fmt.Sprintf("lanes=%d", lanes), func(b *testing.B) {
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
					reqs[l] = append(reqs[l], backfill.Event{Pos: backfill.Position{Object: "file:///in/events.jsonl", Record: int64(i*lanes + l)}})
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
