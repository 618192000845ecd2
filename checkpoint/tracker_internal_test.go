package checkpoint

import (
	"math/rand/v2"
	"testing"

	"github.com/backfillhq/backfill"
)

// TestTrackerMemoryBounded checks the per-record memory: only records read
// and not settled are remembered, and nothing once the object is done.
func TestTrackerMemoryBounded(t *testing.T) {
	const n, window = 5000, 32
	rng := rand.New(rand.NewPCG(1, 2))
	tr := NewTracker(nil)
	p := func(r int64) backfill.Position { return backfill.Position{Object: "o", Record: r, Offset: r} }
	var inflight []int64
	maxHeld := 0
	for next := int64(0); next < n || len(inflight) > 0; {
		for len(inflight) < window && next < n {
			tr.Read(p(next))
			inflight = append(inflight, next)
			next++
		}
		i := rng.IntN(len(inflight))
		tr.Settle(p(inflight[i]), Accepted)
		inflight[i] = inflight[len(inflight)-1]
		inflight = inflight[:len(inflight)-1]
		ot := tr.objs["o"]
		if got := ot.inflight.len(); got != len(inflight) {
			t.Fatalf("tracker remembers %d records, %d in flight", got, len(inflight))
		}
		// The settled set holds one range per gap (at most window of them)
		// and fewer buffered records than that, or than minMerge.
		maxHeld = max(maxHeld, ot.settled.held())
	}
	if maxHeld > 2*window+minMerge {
		t.Fatalf("settled set held up to %d ranges and records with a window of %d", maxHeld, window)
	}
	tr.EOF("o", n)
	if ot := tr.objs["o"]; !ot.obj.Done || ot.inflight.entries() != 0 {
		t.Fatalf("done=%v inflight=%v", ot.obj.Done, ot.inflight)
	}
}
