package chunker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/chunker"
)

// benchLaneEvents returns n events over devices devices (one user per
// device, none for one device in ten), about 450 bytes each, as the
// throughput benchmark's data.
func benchLaneEvents(n, devices int) []backfill.Event {
	raw := make([]byte, 450)
	evs := make([]backfill.Event, n)
	devs := make([]string, devices)
	users := make([]string, devices)
	for d := range devices {
		devs[d] = fmt.Sprintf("%08x-1f2e-4d3c-8b4a-%012x", d*7919, d)
		if d%10 != 0 {
			users[d] = fmt.Sprintf("user-%07d", d)
		}
	}
	for i := range evs {
		d := (i * 2654435761) % devices
		evs[i] = backfill.Event{Raw: raw, DeviceID: devs[d], UserID: users[d], Pos: backfill.Position{Object: "o", Record: int64(i)}}
	}
	return evs
}

// BenchmarkLanePushNext measures one event through a lane: Push, then Next
// packing it under a 300 events/s budget (sketch path: every id is cold),
// as a pipeline lane does. One op is one event.
func BenchmarkLanePushNext(b *testing.B) {
	for _, devices := range []int{3000, 50000} {
		b.Run(fmt.Sprintf("devices=%d", devices), func(b *testing.B) {
			evs := benchLaneEvents(1<<16, devices)
			l := chunker.NewLane(chunker.NewBudget(chunker.DefaultEPS, 0), chunker.Options{})
			now := time.Unix(1_700_000_000, 0)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ev := evs[i%len(evs)]
				i++
				for !l.Push(ev, now) {
					now = now.Add(time.Millisecond)
					batch := l.Next(now.Add(time.Second))
					recycle(l, batch)
				}
			}
		})
	}
}

// BenchmarkLaneNextSkewed is the same with one hot device holding half the
// events (exact tracking path, pacing).
func BenchmarkLaneNextSkewed(b *testing.B) {
	evs := benchLaneEvents(1<<16, 50000)
	for i := 0; i < len(evs); i += 2 {
		evs[i].DeviceID, evs[i].UserID = "hot-device-0000000000000000000000", "hot-user"
	}
	l := chunker.NewLane(chunker.NewBudget(chunker.DefaultEPS, 0), chunker.Options{})
	now := time.Unix(1_700_000_000, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev := evs[i%len(evs)]
		i++
		for !l.Push(ev, now) {
			now = now.Add(10 * time.Millisecond)
			recycle(l, l.Next(now.Add(time.Second)))
		}
	}
	l.Release()
}
