package chunker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/backfillhq/backfill/chunker"
)

// TestLaneBytesFreedBySend guards the byte accounting: events that leave
// the lane must give their bytes back, or a lane that has carried
// MaxQueuedBytes over its life refuses every push (a long run stalled after
// about 1M events of 540 bytes with the 32 MiB default).
func TestLaneBytesFreedBySend(t *testing.T) {
	l := chunker.NewLane(chunker.NewBudget(0, 0), chunker.Options{MaxQueuedBytes: 10_000, NoSpill: true})
	now := t0
	for round := range 5 {
		for i := range 9 {
			if !l.Push(ev(fmt.Sprintf("device-%d-%d", round, i), "", int64(round*9+i), 1000), now) {
				t.Fatalf("round %d: push %d refused with %d events queued", round, i, l.Len())
			}
		}
		now = now.Add(time.Second)
		if b := l.Next(now); len(b.Events) != 9 {
			t.Fatalf("round %d: sent %d events, want 9", round, len(b.Events))
		}
	}
}
