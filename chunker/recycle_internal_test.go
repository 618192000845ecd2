package chunker

import (
	"testing"
	"time"

	"github.com/backfillhq/backfill"
)

// A recycled batch slice is cleared and reused by the next Next.
func TestLaneRecycle(t *testing.T) {
	l := NewLane(NewBudget(0, 0), Options{})
	now := time.Unix(1_700_000_000, 0)
	push := func(n int) {
		for i := range n {
			l.Push(backfill.Event{DeviceID: "device-1", Raw: []byte("{}"), Pos: backfill.Position{Record: int64(i)}}, now)
		}
	}
	push(3)
	b := l.Next(now.Add(time.Second))
	if len(b.Events) != 3 {
		t.Fatalf("got %d events", len(b.Events))
	}
	first := &b.Events[:1][0]
	l.Recycle(b.Events)
	if b.Events[0].Raw != nil {
		t.Fatal("recycled events not cleared")
	}
	push(2)
	b2 := l.Next(now.Add(2 * time.Second))
	if len(b2.Events) != 2 || &b2.Events[0] != first {
		t.Fatalf("Next did not reuse the recycled slice (%d events)", len(b2.Events))
	}
	if b2.Events[1].Pos.Record != 1 {
		t.Fatalf("events out of order: %+v", b2.Events)
	}
}

// The interleaved sketch counts as two separate epochs would: estimates
// cover the current and previous epoch, the one before is forgotten.
func TestSketchEpochs(t *testing.T) {
	s := newSketch(31)
	h := hashID("device-1")
	now := int64(31 * 1000)
	if est, ok := s.addIfUnder(h, now, 5, 100); !ok || est != 0 {
		t.Fatalf("addIfUnder = %d, %v", est, ok)
	}
	if est, ok := s.addIfUnder(h, now+30, 45, 100); !ok || est != 5 {
		t.Fatalf("addIfUnder = %d, %v", est, ok)
	}
	if est, ok := s.addIfUnder(h, now+31, 1, 100); ok || est != 50 {
		t.Fatalf("over half the limit: addIfUnder = %d, %v", est, ok)
	}
	s.add(h, now+31, 7) // next epoch
	if est := s.estimate(h, now+40); est != 57 {
		t.Fatalf("estimate over two epochs = %d, want 57", est)
	}
	if est := s.estimate(h, now+62); est != 7 {
		t.Fatalf("estimate after one epoch more = %d, want 7", est)
	}
	s.add(h, now+62, -2)
	if est := s.estimate(h, now+62); est != 5 {
		t.Fatalf("estimate after give = %d, want 5", est)
	}
	if est := s.estimate(h, now+200); est != 0 {
		t.Fatalf("estimate after a jump = %d, want 0", est)
	}
}
