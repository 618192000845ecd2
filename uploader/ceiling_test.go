package uploader_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/ceiling"
	"github.com/backfillhq/backfill/emulator"
	"github.com/backfillhq/backfill/uploader"
)

// simClock is simulated time shared by the emulator, the ceiling and the
// client's backoff: sleeping advances it.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *simClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return nil
}

// simEvents returns n events spread over 1,000 devices (no per-id limit
// comes near) with unique insert_ids.
func simEvents(n int) []backfill.Event {
	evs := make([]backfill.Event, n)
	for i := range evs {
		dev := fmt.Sprintf("device-%04d", i%1000)
		evs[i] = backfill.Event{
			Raw:      []byte(fmt.Sprintf(`{"event_type":"Sim","device_id":%q,"time":1700000000000,"insert_id":"sim-%d"}`, dev, i)),
			DeviceID: dev,
			InsertID: fmt.Sprintf("sim-%d", i),
			Pos:      backfill.Position{Object: "mem://sim", Record: int64(i)},
		}
	}
	return evs
}

type simResult struct {
	took, adapted  time.Duration // whole run; from the adaptation point on
	adaptedEvents  int           // accepted after the adaptation point
	requests, p429 int
	emu            emulator.Stats
	lim            ceiling.Stats
}

// simulate sends events in chunks of 2,000 (what a lane packs) through a
// client with a ceiling of opts, against the emulator with cfg, all in
// simulated time; each request also takes rtt. Adaptation is taken to be
// over after `settle`.
func simulate(t *testing.T, n int, cfg emulator.Config, opts ceiling.Options, maxAttempts int, rtt, settle time.Duration) simResult {
	t.Helper()
	clk := &simClock{t: time.Unix(1_700_000_000, 0)}
	cfg.Now = clk.Now
	cfg.DiscardEvents = true
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = clk.Sleep(r.Context(), rtt)
		emu.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	opts.Now, opts.Sleep = clk.Now, clk.Sleep
	lim, err := ceiling.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := uploader.New(uploader.Options{
		Endpoint: ts.URL, APIKey: testKey, HTTPClient: ts.Client(), Logger: discardLogger(),
		MaxAttempts: maxAttempts, Sleep: clk.Sleep, Ceilings: [2]*ceiling.Limiter{lim, lim},
	})
	if err != nil {
		t.Fatal(err)
	}
	evs := simEvents(n)
	start := clk.Now()
	var res simResult
	accepted := 0
	for off := 0; off < n; off += 2000 {
		chunk := evs[off:min(off+2000, n)]
		r, err := c.Send(context.Background(), backfill.RouteBatch, chunk)
		if err != nil {
			t.Fatalf("Send gave up after %v: %v", clk.Now().Sub(start), err)
		}
		if len(r.Accepted) != len(chunk) {
			t.Fatalf("accepted %d of %d: %+v", len(r.Accepted), len(chunk), r)
		}
		res.requests += r.Stats.Requests
		res.p429 += r.Stats.Project429
		accepted += len(chunk)
		if clk.Now().Sub(start) >= settle && res.adapted == 0 {
			res.adapted = clk.Now().Sub(start)
			res.adaptedEvents = accepted
		}
	}
	res.took = clk.Now().Sub(start)
	res.adaptedEvents = accepted - res.adaptedEvents
	res.adapted = res.took - res.adapted
	res.emu, res.lim = emu.Stats(), lim.Stats()
	if res.emu.EventsAccepted != int64(n) || res.emu.EventsDuplicate != 0 {
		t.Fatalf("emulator accepted %d (%d duplicates), want %d exactly once", res.emu.EventsAccepted, res.emu.EventsDuplicate, n)
	}
	return res
}

// TestProjectLimitAdaptation is the first scenario in simulated
// time: 60,000 events against a project limit of 1,000 events/s, with no
// ceiling configured. The client learns the limit from the 429s, delivers
// every event exactly once, gives up no request although MaxAttempts is 2,
// and once adapted runs within 10% of the limit.
func TestProjectLimitAdaptation(t *testing.T) {
	res := simulate(t, 60_000, emulator.Config{ProjectEPS: 1000}, ceiling.Options{}, 2, 20*time.Millisecond, 10*time.Second)
	rate := float64(res.adaptedEvents) / res.adapted.Seconds()
	t.Logf("60,000 events in %v simulated; after the first 10 s %.0f events/s; %d requests, %d project 429s; ceiling now %.0f events/s, %d cuts, held back %v",
		res.took.Round(time.Millisecond), rate, res.requests, res.p429, res.lim.EPS, res.lim.Cuts, res.lim.HeldBack.Round(time.Millisecond))
	if rate < 900 || rate > 1000 {
		t.Errorf("achieved %.0f events/s once adapted, want within 10%% of the 1,000 limit", rate)
	}
	if res.p429 == 0 || res.emu.ProjectThrottled != int64(res.p429) {
		t.Errorf("project 429s: client %d, emulator %d", res.p429, res.emu.ProjectThrottled)
	}
}

// TestMaxEPSHoldsTheCeiling is the second scenario: with a ceiling of 500
// events/s the emulator never sees more than 500 events in a second beyond
// one burst (500), and the run takes what 500 events/s take.
func TestMaxEPSHoldsTheCeiling(t *testing.T) {
	res := simulate(t, 20_000, emulator.Config{}, ceiling.Options{EPS: 500}, 0, 5*time.Millisecond, 0)
	t.Logf("20,000 events in %v simulated; max %d events in a 1 s window; held back %v", res.took.Round(time.Millisecond), res.emu.MaxProjectEPS, res.lim.HeldBack.Round(time.Millisecond))
	if res.emu.MaxProjectEPS > 1000 {
		t.Errorf("%d events in a 1 s window, want at most 500 + one burst of 500", res.emu.MaxProjectEPS)
	}
	if want := 39 * time.Second; res.took < want || res.took > want+2*time.Second {
		t.Errorf("took %v, want about %v (20,000 events at 500/s, the first 500 from the full bucket)", res.took, want)
	}
	if res.emu.Responses[429] != 0 {
		t.Errorf("%d 429s without any limit", res.emu.Responses[429])
	}
}

// TestProjectPushbackAtTheFloorGivesUp: a project that refuses everything
// drives the ceiling to its floor, and then the 429s count against
// MaxAttempts like any failure: the run stops instead of looping.
func TestProjectPushbackAtTheFloorGivesUp(t *testing.T) {
	clk := &simClock{t: time.Unix(1_700_000_000, 0)}
	srv := newServer(t)
	srv.fn = func(request) reply { return r(429, body429Empty) }
	lim, err := ceiling.New(ceiling.Options{Now: clk.Now, Sleep: clk.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, srv, nil, func(o *uploader.Options) {
		o.MaxAttempts = 3
		o.Sleep = clk.Sleep
		o.Ceilings = [2]*ceiling.Limiter{lim, lim}
	})
	_, err = c.Send(context.Background(), backfill.RouteBatch, makeEvents(10))
	if !errors.Is(err, uploader.ErrRetriesExhausted) {
		t.Fatalf("err=%v, want ErrRetriesExhausted", err)
	}
	st := lim.Stats()
	if st.EPS != ceiling.FloorEPS {
		t.Fatalf("gave up above the floor: %+v", st)
	}
	t.Logf("gave up after %d requests, %d cuts, %v simulated", len(srv.requests()), st.Cuts, clk.Now().Sub(time.Unix(1_700_000_000, 0)))
}
