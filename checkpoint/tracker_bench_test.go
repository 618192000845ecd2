package checkpoint_test

import (
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
)

// BenchmarkTrackerReadSettle measures one record through the tracker as the
// pipeline drives it: Read in source order, then settled by 16 lanes, each
// settling its share of a window of 32,000 records (a device's records go
// to one lane, so a lane's batch is an interleaved subsequence), one record
// at a time (Settle) or one batch at a time (SettleEvents). One op is one
// record.
func BenchmarkTrackerReadSettle(b *testing.B) {
	const lanes, window = 16, 32000
	for _, batch := range []bool{false, true} {
		name := "Settle"
		if batch {
			name = "SettleEvents"
		}
		b.Run(name, func(b *testing.B) {
			tr := checkpoint.NewTracker(nil)
			tr.Begin("s3://bucket/events/part-00001.jsonl.gz", "")
			pos := backfill.Position{Object: "s3://bucket/events/part-00001.jsonl.gz"}
			batches := make([][]backfill.Event, lanes)
			idx := make([]int, 0, window)
			var rec int64
			b.ReportAllocs()
			for b.Loop() {
				pos.Record, pos.Offset, pos.Line = rec, rec*450, rec+1
				rec++
				tr.Read(pos)
				l := int(uint64(pos.Record*2654435761) % lanes)
				batches[l] = append(batches[l], backfill.Event{Pos: pos})
				if rec%window != 0 {
					continue
				}
				for l, evs := range batches {
					if batch {
						idx = idx[:0]
						for i := range evs {
							idx = append(idx, i)
						}
						tr.SettleEvents(evs, idx, checkpoint.Accepted)
					} else {
						for i := range evs {
							tr.Settle(evs[i].Pos, checkpoint.Accepted)
						}
					}
					batches[l] = evs[:0]
				}
			}
		})
	}
}
