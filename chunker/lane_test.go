package chunker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/chunker"
)

var t0 = time.Unix(1_700_000_000, 0)

func ev(dev, user string, rec int64, size int) backfill.Event {
	raw := make([]byte, size)
	for i := range raw {
		raw[i] = 'x'
	}
	return backfill.Event{DeviceID: dev, UserID: user, Raw: raw, Pos: backfill.Position{Object: "o", Record: rec}}
}

// drain runs the lane to empty on a simulated clock and returns the batches.
func drain(t *testing.T, l *chunker.Lane, now time.Time, limit int) ([][]backfill.Event, time.Time) {
	t.Helper()
	var out [][]backfill.Event
	for i := 0; i < limit; i++ {
		b := l.Next(now)
		if len(b.Events) > 0 {
			out = append(out, b.Events)
			continue
		}
		if b.Queued == 0 {
			return out, now
		}
		now = now.Add(b.Wait)
	}
	t.Fatalf("lane did not drain in %d steps", limit)
	return nil, now
}

func TestLaneLimits(t *testing.T) {
	tests := []struct {
		name      string
		n, size   int
		opts      chunker.Options
		wantSizes []int
	}{
		{"MaxEvents", 4500, 10, chunker.Options{MaxQueued: 5000}, []int{2000, 2000, 500}},
		{"MaxEventsOption", 25, 10, chunker.Options{MaxEvents: 10}, []int{10, 10, 5}},
		{"MaxBytes", 10, 100, chunker.Options{MaxBytes: 100*4 + 4 + 50, Overhead: 50}, []int{4, 4, 2}},
		{"OversizedAlone", 2, 1000, chunker.Options{MaxBytes: 500, Overhead: 50}, []int{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := chunker.NewLane(chunker.NewBudget(0, 0), tt.opts)
			for i := 0; i < tt.n; i++ {
				if !l.Push(ev(fmt.Sprintf("device-%d", i%7), "", int64(i), tt.size), t0) {
					t.Fatalf("push %d refused", i)
				}
			}
			l.Close()
			batches, _ := drain(t, l, t0, 100)
			var got []int
			for _, b := range batches {
				got = append(got, len(b))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.wantSizes) {
				t.Fatalf("batch sizes=%v, want %v", got, tt.wantSizes)
			}
		})
	}
}

func TestLanePerDeviceOrderAndPacing(t *testing.T) {
	const eps = 10 // 300 events per 30 s window per id
	b := chunker.NewBudget(eps, 0)
	l := chunker.NewLane(b, chunker.Options{MaxQueued: 1 << 20})
	// One hot device with 1,000 events and 200 cold devices with 2 each.
	var rec int64
	for i := 0; i < 1000; i++ {
		l.Push(ev("hot-device", "", rec, 10), t0)
		rec++
		if i < 400 {
			l.Push(ev(fmt.Sprintf("cold-%03d", i/2), "", rec, 10), t0)
			rec++
		}
	}
	l.Close()
	batches, end := drain(t, l, t0, 10000)

	last := map[string]int64{}
	sentAt := map[string][]time.Time{}
	now := t0
	total := 0
	_ = now
	for _, batch := range batches {
		for _, e := range batch {
			if p, ok := last[e.DeviceID]; ok && e.Pos.Record <= p {
				t.Fatalf("device %s: record %d after %d", e.DeviceID, e.Pos.Record, p)
			}
			last[e.DeviceID] = e.Pos.Record
			total++
		}
	}
	if total != 1400 {
		t.Fatalf("sent %d events, want 1400", total)
	}
	// All cold devices go in the first request even though the hot one is paced.
	cold := 0
	for _, e := range batches[0] {
		if e.DeviceID != "hot-device" {
			cold++
		}
	}
	if cold != 400 {
		t.Fatalf("first batch has %d cold events, want 400", cold)
	}
	_ = sentAt
	// 1,000 hot events at 300 per window need at least 3 full windows after the first.
	if got, min := end.Sub(t0), 90*time.Second; got < min {
		t.Fatalf("drained in %v, faster than the budget allows (%v)", got, min)
	}
	if got, max := end.Sub(t0), 130*time.Second; got > max {
		t.Fatalf("drained in %v, slower than needed (%v)", got, max)
	}
}

func TestLaneNeverExceedsWindow(t *testing.T) {
	const eps = 5
	b := chunker.NewBudget(eps, 0)
	lanes := []*chunker.Lane{chunker.NewLane(b, chunker.Options{}), chunker.NewLane(b, chunker.Options{})}
	// The same user on two devices in two lanes: the user budget is shared.
	for i := 0; i < 600; i++ {
		lanes[i%2].Push(ev(fmt.Sprintf("device-%d", i%2), "the-user", int64(i), 10), t0)
	}
	for _, l := range lanes {
		l.Close()
	}
	type sent struct {
		at time.Time
		n  int
	}
	var log []sent
	now := t0
	for step := 0; step < 100000; step++ {
		progress := false
		var wait time.Duration = time.Hour
		for _, l := range lanes {
			bt := l.Next(now)
			if len(bt.Events) > 0 {
				log = append(log, sent{now, len(bt.Events)})
				progress = true
			} else if bt.Queued > 0 && bt.Wait < wait {
				wait = bt.Wait
			}
		}
		if lanes[0].Len()+lanes[1].Len() == 0 {
			break
		}
		if !progress {
			now = now.Add(wait)
		}
	}
	// Any 30 s window holds at most eps*30 events of the user.
	for i := range log {
		n := 0
		for j := range log {
			if !log[j].at.Before(log[i].at) && log[j].at.Sub(log[i].at) < 30*time.Second {
				n += log[j].n
			}
		}
		if n > eps*30 {
			t.Fatalf("window starting %v holds %d events, limit %d", log[i].at.Sub(t0), n, eps*30)
		}
	}
}

func TestLaneRequeueAndPause(t *testing.T) {
	b := chunker.NewBudget(0, 0)
	l := chunker.NewLane(b, chunker.Options{MaxEvents: 3})
	for i := 0; i < 6; i++ {
		l.Push(ev("device-a", "", int64(i), 10), t0)
	}
	l.Close()
	first := l.Next(t0)
	if len(first.Events) != 3 {
		t.Fatalf("first batch %d events", len(first.Events))
	}
	// The server throttled the batch: pause the device and requeue.
	b.Pause(chunker.Device, "device-a", t0.Add(30*time.Second))
	l.Requeue(first.Events, t0)
	if got := l.Next(t0.Add(time.Second)); len(got.Events) != 0 || got.Wait < 28*time.Second {
		t.Fatalf("paused device sent %d events, wait %v", len(got.Events), got.Wait)
	}
	batches, _ := drain(t, l, t0.Add(31*time.Second), 10)
	var recs []int64
	for _, bt := range batches {
		for _, e := range bt {
			recs = append(recs, e.Pos.Record)
		}
	}
	if fmt.Sprint(recs) != "[0 1 2 3 4 5]" {
		t.Fatalf("order after requeue %v", recs)
	}
}

func TestLaneBackpressure(t *testing.T) {
	l := chunker.NewLane(chunker.NewBudget(0, 0), chunker.Options{MaxQueued: 5})
	for i := 0; i < 5; i++ {
		if !l.Push(ev("device-a", "", int64(i), 1), t0) {
			t.Fatalf("push %d refused", i)
		}
	}
	if l.Push(ev("device-a", "", 5, 1), t0) {
		t.Fatal("push above MaxQueued accepted")
	}
	if b := l.Next(t0.Add(time.Second)); len(b.Events) != 5 {
		t.Fatalf("got %d", len(b.Events))
	}
	select {
	case <-l.Space():
	default:
		t.Fatal("no space signal")
	}
}

func TestLaneDailyBudget(t *testing.T) {
	daily := chunker.NewDailyBudget(250)
	l := chunker.NewLane(chunker.NewBudget(0, 0), chunker.Options{Daily: daily})
	for i := 0; i < 400; i++ {
		l.Push(ev("device-a", "", int64(i), 10), t0)
	}
	l.Close()
	b := l.Next(t0)
	if len(b.Events) != 250 {
		t.Fatalf("first batch %d events, want the daily budget of 250", len(b.Events))
	}
	if b = l.Next(t0.Add(time.Hour)); len(b.Events) != 0 || b.Wait < time.Minute {
		t.Fatalf("within the day: %d events, wait %v", len(b.Events), b.Wait)
	}
	// A day later (the window is 24 h in 1 h steps) the budget is back.
	if b = l.Next(t0.Add(26 * time.Hour)); len(b.Events) != 150 {
		t.Fatalf("next day: %d events, want 150", len(b.Events))
	}
	if l.Len() != 0 {
		t.Fatalf("%d events left", l.Len())
	}
}

// TestLaneMaxPerID: with an unlimited budget (the pace alone would allow
// it) no request holds more than MaxPerID events of one device or of one
// user, while other ids still fill the request; every event still leaves
// the lane, in per-device order.
func TestLaneMaxPerID(t *testing.T) {
	const capN = 900
	l := chunker.NewLane(chunker.NewBudget(0, 0), chunker.Options{MaxPerID: capN, MaxQueued: 10000, MaxQueuedBytes: 1 << 30})
	n := 0
	push := func(dev, user string, k int) {
		for range k {
			if !l.Push(ev(dev, user, int64(n), 10), t0) {
				t.Fatalf("push %d refused", n)
			}
			n++
		}
	}
	push("device-hot", "", 2500) // one device over the cap
	for i := range 1200 {        // one user over many devices
		push(fmt.Sprintf("dev-%04d", i), "user-spread", 1)
	}
	push("device-cold", "", 300)
	l.Close()
	batches, _ := drain(t, l, t0, 100)
	total := 0
	last := map[string]int64{}
	for bi, b := range batches {
		perDev, perUser := map[string]int{}, map[string]int{}
		for _, e := range b {
			perDev[e.DeviceID]++
			if e.UserID != "" {
				perUser[e.UserID]++
			}
			if p, ok := last[e.DeviceID]; ok && e.Pos.Record < p {
				t.Fatalf("device %s out of order", e.DeviceID)
			}
			last[e.DeviceID] = e.Pos.Record
		}
		for id, c := range perDev {
			if c > capN {
				t.Errorf("batch %d holds %d events of device %s, cap %d", bi, c, id, capN)
			}
		}
		for id, c := range perUser {
			if c > capN {
				t.Errorf("batch %d holds %d events of user %s, cap %d", bi, c, id, capN)
			}
		}
		total += len(b)
	}
	if total != n {
		t.Fatalf("%d events left the lane, want %d", total, n)
	}
	if len(batches[0]) < capN+300 {
		t.Errorf("first batch has %d events: the cap held back other ids", len(batches[0]))
	}
}
