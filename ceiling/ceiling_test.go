package ceiling_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/backfillhq/backfill/ceiling"
)

// clock is simulated time: Sleep advances it. Only the head of a Limiter's
// queue ever sleeps, so several goroutines can share one clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	return nil
}

func newLimiter(t *testing.T, c *clock, o ceiling.Options) *ceiling.Limiter {
	t.Helper()
	o.Now, o.Sleep = c.Now, c.Sleep
	l, err := ceiling.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// sends records when each request was let through.
type sends struct {
	mu sync.Mutex
	at []time.Time
	n  []int
}

func (s *sends) add(t time.Time, n int) {
	s.mu.Lock()
	s.at = append(s.at, t)
	s.n = append(s.n, n)
	s.mu.Unlock()
}

// maxIn is the most events let through in any window of length w.
func (s *sends) maxIn(w time.Duration) int {
	best := 0
	for i := range s.at {
		sum := 0
		for j := i; j < len(s.at) && s.at[j].Sub(s.at[i]) < w; j++ {
			sum += s.n[j]
		}
		best = max(best, sum)
	}
	return best
}

func TestCeilingIsEnforced(t *testing.T) {
	tests := []struct {
		name      string
		opts      ceiling.Options
		events    int // per request
		requests  int
		wantMax   int           // MaxEvents
		wantTime  time.Duration // simulated time to let everything through
		window1s  int           // most events allowed in any 1 s window
		wantReqs  int           // most requests in any 1 s window (0: not checked)
		wantHeldF float64       // share of wantTime spent held back, at least
	}{
		// A request larger than MaxEvents waits for an empty window.
		{name: "EPS", opts: ceiling.Options{EPS: 500}, events: 500, requests: 100,
			wantMax: 50, wantTime: 99 * time.Second, window1s: 500, wantHeldF: 0.99},
		{name: "EPSSmallRequests", opts: ceiling.Options{EPS: 500}, events: 50, requests: 1000,
			wantMax: 50, wantTime: 99 * time.Second, window1s: 500, wantHeldF: 0.99},
		// 16 of 30 fill 480 of a window of 500.
		{name: "EPSUnevenRequests", opts: ceiling.Options{EPS: 500}, events: 30, requests: 1000,
			wantMax: 50, wantTime: 62 * time.Second, window1s: 500, wantHeldF: 0.99},
		{name: "EPSAboveBatch", opts: ceiling.Options{EPS: 10000, MaxEvents: 2000}, events: 2000, requests: 50,
			wantMax: 1000, wantTime: 9 * time.Second, window1s: 10000, wantHeldF: 0.99},
		{name: "RPS", opts: ceiling.Options{RPS: 10}, events: 1, requests: 100,
			wantMax: 2000, wantTime: 9 * time.Second, wantReqs: 10, wantHeldF: 0.99},
		{name: "SlowRPS", opts: ceiling.Options{RPS: 0.5}, events: 1, requests: 10,
			wantMax: 2000, wantTime: 18 * time.Second, wantReqs: 1, wantHeldF: 0.99},
		{name: "Both", opts: ceiling.Options{EPS: 1000, RPS: 2}, events: 100, requests: 40,
			wantMax: 100, wantTime: 19 * time.Second, window1s: 200, wantHeldF: 0.99},
		{name: "Unlimited", opts: ceiling.Options{}, events: 2000, requests: 100, wantMax: 2000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			l := newLimiter(t, c, tt.opts)
			if got := l.MaxEvents(); got != tt.wantMax {
				t.Fatalf("MaxEvents=%d, want %d", got, tt.wantMax)
			}
			start := c.Now()
			var s sends
			for range tt.requests {
				tk, err := l.Wait(context.Background(), tt.events)
				if err != nil {
					t.Fatal(err)
				}
				s.add(c.Now(), tt.events)
				l.Done(tk, ceiling.Clean)
			}
			took := c.Now().Sub(start)
			if d := took - tt.wantTime; d < -10*time.Millisecond || d > 10*time.Millisecond {
				t.Errorf("took %v, want %v", took, tt.wantTime)
			}
			if tt.window1s > 0 {
				if got := s.maxIn(time.Second); got > tt.window1s {
					t.Errorf("%d events in a 1 s window, want at most %d", got, tt.window1s)
				}
			}
			if tt.wantReqs > 0 {
				best := 0
				for i := range s.at {
					n := 0
					for j := i; j < len(s.at) && s.at[j].Sub(s.at[i]) < time.Second; j++ {
						n++
					}
					best = max(best, n)
				}
				if best > tt.wantReqs {
					t.Errorf("%d requests in a 1 s window, want at most %d", best, tt.wantReqs)
				}
			}
			st := l.Stats()
			if held := st.HeldBack; float64(held) < tt.wantHeldF*float64(tt.wantTime) || held > took {
				t.Errorf("held back %v of %v", held, took)
			}
			if st.Sent != int64(tt.events*tt.requests) || st.Requests != int64(tt.requests) {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestLanesShareTheCeiling: eight goroutines share one limiter; together
// they get the ceiling, not eight times it.
func TestLanesShareTheCeiling(t *testing.T) {
	c := newClock()
	l := newLimiter(t, c, ceiling.Options{EPS: 1000})
	start := c.Now()
	var s sends
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				tk, err := l.Wait(context.Background(), 100)
				if err != nil {
					t.Error(err)
					return
				}
				s.add(c.Now(), 100)
				l.Done(tk, ceiling.Clean)
			}
		})
	}
	wg.Wait()
	// 40,000 events at 1,000/s: the last 1,000 go 39 s after the first,
	// or a little later: a request another goroutine has not answered yet
	// still counts, and the head polls for it (each poll advances the
	// simulated clock).
	if took, want := c.Now().Sub(start), 39*time.Second; took < want || took > want+6*time.Second {
		t.Errorf("took %v, want %v to %v", took, want, want+6*time.Second)
	}
	// (The times recorded here may lag the admissions, since other
	// goroutines advance the clock: windows are checked in the sequential
	// tests.)
	if st := l.Stats(); st.Sent != 40000 || st.Requests != 400 {
		t.Errorf("stats %+v", st)
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	c := newClock()
	l := newLimiter(t, c, ceiling.Options{EPS: 10})
	if _, err := l.Wait(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Wait(ctx, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("err=%v, want context.Canceled", err)
	}
	var nl *ceiling.Limiter // nil: unlimited
	if _, err := nl.Wait(context.Background(), 1<<20); err != nil || nl.MaxEvents() < 1<<20 || nl.Done(ceiling.Ticket{}, ceiling.Pushback) {
		t.Fatal("a nil limiter is not unlimited")
	}
}

// send lets one request of n events through and answers it with o.
func send(t *testing.T, l *ceiling.Limiter, n int, o ceiling.Outcome) bool {
	t.Helper()
	tk, err := l.Wait(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	return l.Done(tk, o)
}

func TestPushbackCutsOncePerRound(t *testing.T) {
	c := newClock()
	l := newLimiter(t, c, ceiling.Options{})
	// Unlimited: 2,000 events every 100 ms for a second, all clean.
	for range 10 {
		send(t, l, 2000, ceiling.Clean)
		c.Advance(100 * time.Millisecond)
	}
	if st := l.Stats(); st.EPS != 0 || st.RPS != 0 {
		t.Fatalf("a ceiling without pushback: %+v", st)
	}
	// Three requests in flight at once; all three are pushed back.
	var tks []ceiling.Ticket
	for range 3 {
		tk, err := l.Wait(context.Background(), 2000)
		if err != nil {
			t.Fatal(err)
		}
		tks = append(tks, tk)
	}
	for _, tk := range tks {
		if !l.Done(tk, ceiling.Pushback) {
			t.Fatal("pushback not absorbed")
		}
	}
	st := l.Stats()
	// Measured over the last second: 24,000 events, cut to 95%.
	if st.Cuts != 1 || st.Pushbacks != 3 {
		t.Fatalf("cuts %d, pushbacks %d; want 1 cut for 3 answers to one round", st.Cuts, st.Pushbacks)
	}
	if st.EPS < 22799 || st.EPS > 22801 || st.RPS != 0 {
		t.Fatalf("ceiling %v events/s, %v requests/s after the first cut; want 22,800 and none", st.EPS, st.RPS)
	}
	// The next round, sent at the new ceiling and pushed back, cuts it
	// again (not halved: answers were clean within the last two seconds).
	send(t, l, 2000, ceiling.Pushback)
	if st2 := l.Stats(); st2.Cuts != 2 || st2.EPS < st.EPS*0.95-1 || st2.EPS > st.EPS*0.95+1 {
		t.Fatalf("second cut: %+v", st2)
	}
}

func TestCeilingClimbsBackWhileClean(t *testing.T) {
	c := newClock()
	l := newLimiter(t, c, ceiling.Options{EPS: 1000})
	for range 20 {
		send(t, l, 100, ceiling.Clean)
	}
	send(t, l, 100, ceiling.Pushback) // 20 clean, 1 pushback: cut to 950
	if st := l.Stats(); st.EPS != 950 {
		t.Fatalf("EPS=%v after a cut, want 950", st.EPS)
	}
	if got := l.MaxEvents(); got != 95 {
		t.Fatalf("MaxEvents=%d, want 95", got)
	}
	// Saturated for 10 s of clean answers: +1% of 1,000 per second, back at
	// the configured 1,000 after 5 s and never above it.
	start := c.Now()
	reached := time.Duration(0)
	for c.Now().Sub(start) < 10*time.Second {
		send(t, l, 100, ceiling.Clean)
		if reached == 0 && l.Stats().EPS >= 1000 {
			reached = c.Now().Sub(start)
		}
	}
	if st := l.Stats(); st.EPS != 1000 {
		t.Fatalf("EPS=%v after 10 clean seconds, want the configured 1000", st.EPS)
	}
	if reached < 4*time.Second || reached > 6*time.Second {
		t.Errorf("climbed back in %v, want about 5 s", reached)
	}
}

// After an outage has cut the ceiling to its floor, clean answers bring it
// back: 1% per second of 1 event/s would be nothing, so the step has a
// minimum (10 events/s per second).
func TestCeilingClimbsBackFromTheFloor(t *testing.T) {
	c := newClock()
	l := newLimiter(t, c, ceiling.Options{EPS: 1000})
	// An outage answering requests that fill the ceiling: cut after cut
	// (1000, 500, 250, ...), the last one from about 2 events/s.
	for send(t, l, max(1, l.MaxEvents()), ceiling.Pushback) {
	}
	if st := l.Stats(); st.EPS != ceiling.FloorEPS {
		t.Fatalf("EPS=%v after an outage, want the floor", st.EPS)
	}
	start := c.Now()
	for c.Now().Sub(start) < 30*time.Second {
		send(t, l, max(1, l.MaxEvents()), ceiling.Clean)
	}
	if st := l.Stats(); st.EPS < 250 || st.EPS > 320 {
		t.Fatalf("EPS=%v after 30 clean seconds from the floor, want about 300", st.EPS)
	}
}

func TestIdleCeilingDoesNotClimb(t *testing.T) {
	c := newClock()
	l := newLimiter(t, c, ceiling.Options{EPS: 1000})
	// Not held back, so the cut starts from what was sent (10 events in
	// the last second), halved as nothing was clean yet.
	send(t, l, 10, ceiling.Pushback)
	for range 60 {
		c.Advance(time.Second) // one small request a second: never held back
		send(t, l, 10, ceiling.Clean)
	}
	if st := l.Stats(); st.EPS != 5 {
		t.Fatalf("EPS=%v: an idle ceiling climbed", st.EPS)
	}
}

func TestFloorStopsAbsorbing(t *testing.T) {
	c := newClock()
	l := newLimiter(t, c, ceiling.Options{EPS: 1000, RPS: 100})
	absorbed := 0
	for send(t, l, 1, ceiling.Pushback) {
		if absorbed++; absorbed > 20 {
			t.Fatal("never reached the floor")
		}
	}
	st := l.Stats()
	if absorbed == 0 || st.EPS != ceiling.FloorEPS || st.RPS != 100 {
		t.Fatalf("absorbed %d pushbacks, then %+v; want the events floor and the requests ceiling untouched", absorbed, st)
	}
	if send(t, l, 1, ceiling.Pushback) {
		t.Fatal("pushback at the floor absorbed")
	}
}

func TestOtherOutcomesChangeNothing(t *testing.T) {
	c := newClock()
	l := newLimiter(t, c, ceiling.Options{EPS: 1000})
	for range 50 {
		send(t, l, 100, ceiling.Other)
	}
	if st := l.Stats(); st.EPS != 1000 || st.Cuts != 0 || st.Pushbacks != 0 {
		t.Fatalf("%+v", st)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []ceiling.Options{{EPS: -1}, {RPS: -0.5}, {MaxEvents: -1}} {
		if _, err := ceiling.New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
