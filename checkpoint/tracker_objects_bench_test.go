package checkpoint_test

import (
	"fmt"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
)

// BenchmarkTrackerObjects is BenchmarkTrackerReadSettle (SettleEvents) on
// a bucket, with requests small against the window: records are read
// object after object (perObj records each) into 16 lanes, and once
// 128,000 records are in flight each new record lets one lane send its
// 500 oldest; lane 0 sends only when it holds a quarter of the window. A per-request merge of each object's whole range list costs
// in proportion to the window over the request, so it grows with the
// window; this should not. One op is one record.
func BenchmarkTrackerObjects(b *testing.B) {
	const lanes, window, request = 16, 128000, 500
	for _, perObj := range []int64{1000, 8000, 1 << 20} {
		b.Run(fmt.Sprintf("records-per-object=%d", perObj), func(b *testing.B) {
			tr := checkpoint.NewTracker(nil)
			queues := make([][]backfill.Event, lanes)
			idx := make([]int, request)
			for i := range idx {
				idx[i] = i
			}
			var obj, inObj, inflight int64
			pos := backfill.Position{Object: "s3://bucket/export/part-00000.jsonl.gz"}
			tr.Begin(pos.Object, "")
			next := 0
			b.ReportAllocs()
			for b.Loop() {
				if inObj == perObj {
					tr.EOF(pos.Object, inObj)
					obj++
					inObj = 0
					pos.Object = fmt.Sprintf("s3://bucket/export/part-%05d.jsonl.gz", obj)
					tr.Begin(pos.Object, "")
				}
				pos.Record, pos.Offset, pos.Line = inObj, inObj*450, inObj+1
				inObj++
				tr.Read(pos)
				l := int(uint64((obj<<20+pos.Record)*2654435761) % lanes)
				queues[l] = append(queues[l], backfill.Event{Pos: pos})
				inflight++
				for inflight > window {
					next = (next + 1) % lanes
					q := queues[next]
					if len(q) < request || next == 0 && len(q) < window/4 {
						// Lane 0 is paced (a hot device): it lags far
						// behind, so its records are gaps all over the
						// window.
						continue
					}
					tr.SettleEvents(q, idx, checkpoint.Accepted)
					queues[next] = append(q[:0], q[request:]...)
					inflight -= request
				}
			}
		})
	}
}
