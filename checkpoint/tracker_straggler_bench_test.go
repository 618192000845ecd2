package checkpoint_test

import (
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
)

// BenchmarkTrackerStragglers is BenchmarkTrackerReadSettle (SettleEvents)
// with stragglers: every 100,000th record is held back (a paced or parked
// device) and settled only after another 1,000,000 records were read, so
// the watermark stays behind while the window moves on. One op is one
// record.
func BenchmarkTrackerStragglers(b *testing.B) {
	const (
		lanes, window = 16, 32000
		every, hold   = 100_000, 1_000_000
	)
	obj := "s3://bucket/events/part-00001.jsonl.gz"
	tr := checkpoint.NewTracker(nil)
	tr.Begin(obj, "")
	pos := backfill.Position{Object: obj}
	batches := make([][]backfill.Event, lanes)
	var held []backfill.Event
	idx := make([]int, 0, window)
	var rec int64
	b.ReportAllocs()
	for b.Loop() {
		pos.Record, pos.Offset, pos.Line = rec, rec*450, rec+1
		rec++
		tr.Read(pos)
		if pos.Record%every == 0 {
			held = append(held, backfill.Event{Pos: pos})
		} else {
			l := int(uint64(pos.Record*2654435761) % lanes)
			batches[l] = append(batches[l], backfill.Event{Pos: pos})
		}
		if rec%window != 0 {
			continue
		}
		for l, evs := range batches {
			idx = idx[:0]
			for i := range evs {
				idx = append(idx, i)
			}
			tr.SettleEvents(evs, idx, checkpoint.Accepted)
			batches[l] = evs[:0]
		}
		for len(held) > 0 && held[0].Pos.Record+hold <= rec {
			tr.SettleEvents(held, []int{0}, checkpoint.Accepted)
			held = held[1:]
		}
	}
}
