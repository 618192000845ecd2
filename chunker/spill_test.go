package chunker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/backfillhq/backfill/chunker"
)

// A hot device that has run out of budget must not block the cold devices
// behind it: its backlog spills to disk, memory stays bounded, and every
// event still leaves in per-device order.
func TestLaneSpillsHotDevice(t *testing.T) {
	b := chunker.NewBudget(10, 0) // 300 events per window per id
	l := chunker.NewLane(b, chunker.Options{MaxQueued: 3000, MaxQueuedBytes: 1 << 30, SpillDir: t.TempDir()})
	const hot, cold = 20000, 2000
	var rec int64
	maxInMemory := 0
	for i := 0; i < hot; i++ {
		if !l.Push(ev("hot-device", "", rec, 50), t0) {
			t.Fatalf("push %d of the hot device refused", i)
		}
		rec++
		if i%10 == 0 && i/10 < cold {
			if !l.Push(ev(fmt.Sprintf("cold-%04d", i/10), "", rec, 50), t0) {
				t.Fatalf("cold push refused at %d", i)
			}
			rec++
		}
		maxInMemory = max(maxInMemory, l.Len()-l.Spilled())
	}
	if maxInMemory > 3000+2000 {
		t.Fatalf("%d events in memory, bound is MaxQueued + one request", maxInMemory)
	}
	if l.Spilled() == 0 {
		t.Fatal("nothing spilled")
	}
	l.Close()
	// All cold devices go out in the first two windows even though the hot
	// device needs 67 windows.
	now := t0
	last := map[string]int64{}
	coldSent, total := 0, 0
	for step := 0; step < 100000 && l.Len() > 0; step++ {
		bt := l.Next(now)
		if len(bt.Events) == 0 {
			now = now.Add(bt.Wait)
			continue
		}
		for _, e := range bt.Events {
			if p, ok := last[e.DeviceID]; ok && e.Pos.Record <= p {
				t.Fatalf("device %s: record %d after %d", e.DeviceID, e.Pos.Record, p)
			}
			last[e.DeviceID] = e.Pos.Record
			total++
			if e.DeviceID != "hot-device" {
				coldSent++
				if now.Sub(t0) > 31*time.Second {
					t.Fatalf("cold event sent only at %v", now.Sub(t0))
				}
			}
		}
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if total != hot+cold || coldSent != cold {
		t.Fatalf("sent %d (%d cold), want %d (%d cold)", total, coldSent, hot+cold, cold)
	}
}

// Large events fill a lane's byte bound long before any device holds two
// requests' worth: a paced device must still spill, or the lane refuses
// every push while the device waits for budget (the reader stalls).
func TestLaneSpillsPacedDeviceWithLargeEvents(t *testing.T) {
	b := chunker.NewBudget(10, 0) // 300 events per window
	l := chunker.NewLane(b, chunker.Options{MaxQueued: 100000, MaxQueuedBytes: 1 << 20, SpillDir: t.TempDir()})
	now := t0
	sent := 0
	for i := 0; i < 3000; i++ {
		for tries := 0; !l.Push(ev("hot-device", "", int64(i), 4000), now); tries++ {
			// What the pipeline's lane goroutine does meanwhile: send
			// what it may, or wait a linger for more events.
			if tries > 3 {
				t.Fatalf("push %d refused again and again: the lane is stuck (%d queued, %d spilled)", i, l.Len(), l.Spilled())
			}
			bt := l.Next(now)
			sent += len(bt.Events)
			if len(bt.Events) == 0 && bt.Wait < time.Second {
				now = now.Add(bt.Wait)
			}
		}
	}
	if l.Spilled() == 0 {
		t.Fatal("the paced device never spilled")
	}
	l.Close()
	batches, _ := drain(t, l, now, 100000)
	for _, bt := range batches {
		sent += len(bt)
	}
	if sent != 3000 {
		t.Fatalf("sent %d, want 3000", sent)
	}
}
