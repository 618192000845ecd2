package chunker_test

import (
	"runtime"
	"testing"

	"github.com/backfillhq/backfill/chunker"
)

// TestSpillAgainKeepsMemoryFlat guards the bounded memory of a device that
// is spilled a second time: when a spilling device's memory part is the
// lane's biggest queue again (refilled from its file, or events requeued
// after a 429) and the lane is full, the part goes back to disk ahead of
// the file's contents. That must cost constant memory, never a read of the
// whole backlog into memory (a long hot device could hold gigabytes), and
// the device's order must survive it.
func TestSpillAgainKeepsMemoryFlat(t *testing.T) {
	const (
		hot  = 40_000
		size = 1000
	)
	l := chunker.NewLane(chunker.NewBudget(1000, 0), chunker.Options{MaxQueued: 3000, MaxQueuedBytes: 1 << 30, SpillDir: t.TempDir()})
	for i := range hot {
		if !l.Push(ev("hot", "", int64(i), size), t0) {
			t.Fatalf("push %d refused", i)
		}
	}
	if l.Spilled() < hot-3000 {
		t.Fatalf("%d events spilled, want at least %d", l.Spilled(), hot-3000)
	}
	// One request (the memory part, then a slice of the file), answered
	// 429: its events go back in front, so the hot device's memory part is
	// the lane's biggest queue again.
	b := l.Next(t0)
	if len(b.Events) != chunker.DefaultMaxEvents {
		t.Fatalf("sent %d events, want %d", len(b.Events), chunker.DefaultMaxEvents)
	}
	l.Requeue(b.Events, t0)
	spilled := l.Spilled()

	// The lane is full: a cold device's push spills the hot device again.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if !l.Push(ev("cold", "", hot, size), t0) {
		t.Fatal("cold push refused")
	}
	runtime.ReadMemStats(&after)
	if l.Spilled() <= spilled {
		t.Fatalf("the push did not spill the hot device again (%d spilled, was %d)", l.Spilled(), spilled)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(spilled*size/4) {
		t.Errorf("spilling again allocated %d MB, with %d MB already on disk: the backlog went through memory", alloc>>20, spilled*size>>20)
	}

	l.Close()
	batches, _ := drain(t, l, t0, 10_000)
	next, n := int64(0), 0
	for _, b := range batches {
		for _, e := range b {
			n++
			if e.DeviceID != "hot" {
				continue
			}
			if e.Pos.Record != next {
				t.Fatalf("hot record %d after %d", e.Pos.Record, next-1)
			}
			next++
		}
	}
	if n != hot+1 || next != hot {
		t.Fatalf("drained %d events (%d hot), want %d (%d hot)", n, next, hot+1, hot)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
}
