package sdkcheck_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amplitude/analytics-go/amplitude"
	"github.com/backfillhq/backfill/emulator"
)

const apiKey = "sdk-key-0001"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// quietLogger keeps the SDK's (very verbose) logging out of test output.
type quietLogger struct{}

func (quietLogger) Debugf(string, ...interface{}) {}
func (quietLogger) Infof(string, ...interface{})  {}
func (quietLogger) Warnf(string, ...interface{})  {}
func (quietLogger) Errorf(string, ...interface{}) {}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(s int) { w.status = s; w.ResponseWriter.WriteHeader(s) }

// advancer moves the emulator's clock 31 s forward after every 429, before
// the SDK sees the answer. It stands in for the SDK's 30 s throttle pause,
// which the test shortens to a few real milliseconds with
// RetryThrottledInterval, so the test never waits for real windows.
type advancer struct {
	h        http.Handler
	c        *clock
	throttle atomic.Int64
}

func (a *advancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	a.h.ServeHTTP(sw, r)
	if sw.status == http.StatusTooManyRequests {
		a.throttle.Add(1)
		a.c.Advance(31 * time.Second)
	}
}

type setup struct {
	name     string
	cfg      emulator.Config
	path     string
	useBatch bool
	devices  int
	events   int
	arm      func(*emulator.Server)
	// Expected emulator outcomes besides "every event exactly once".
	wantDuplicates int64
	wantStatuses   []int
	limitEPS       float64
}

func TestSDKThrottledThenDeliveredOnce(t *testing.T) {
	tests := []setup{
		{
			name:         "HTTPV2",
			path:         emulator.PathHTTP,
			devices:      1,
			events:       1000, // 100 per request: the 10th request passes 900 events in 30 s
			wantStatuses: []int{200, 429},
			limitEPS:     emulator.DefaultHTTPEPS,
		},
		{
			name:     "BatchWithFaults",
			cfg:      emulator.Config{BatchEPS: 10}, // 300 events per id per 30 s
			path:     emulator.PathBatch,
			useBatch: true,
			devices:  2,
			events:   1000,
			arm: func(s *emulator.Server) {
				s.FailNextAfterIngest(1, 500) // ingested, then 500: the SDK retries, dedupe absorbs it
				s.FailNext(1, 503)
			},
			wantDuplicates: 100,
			wantStatuses:   []int{200, 429, 500, 503},
			limitEPS:       10,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runSDK(t, tt) })
	}
}

func runSDK(t *testing.T, tt setup) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := tt.cfg
	cfg.Now = c.Now
	srv, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tt.arm != nil {
		tt.arm(srv)
	}
	adv := &advancer{h: srv, c: c}
	ts := httptest.NewServer(adv)
	defer ts.Close()

	results := make(chan amplitude.ExecuteResult, tt.events)
	conf := amplitude.NewConfig(apiKey)
	conf.ServerURL = ts.URL + tt.path
	conf.UseBatch = tt.useBatch
	conf.FlushQueueSize = 100
	conf.FlushInterval = 10 * time.Millisecond
	conf.RetryBaseInterval = 5 * time.Millisecond
	conf.RetryThrottledInterval = 20 * time.Millisecond
	conf.Logger = quietLogger{}
	conf.ExecuteCallback = func(r amplitude.ExecuteResult) { results <- r }
	client := amplitude.NewClient(conf)

	base := c.Now().Add(-time.Hour).UnixMilli()
	for i := range tt.events {
		client.Track(amplitude.Event{
			EventType: "SDK Check",
			EventOptions: amplitude.EventOptions{
				DeviceID: fmt.Sprintf("sdk-device-%04d", i%tt.devices),
				InsertID: fmt.Sprintf("%s-%05d", tt.name, i),
				Time:     base + int64(i),
			},
			EventProperties: map[string]interface{}{"i": i},
		})
	}

	deadline := time.After(45 * time.Second) // a guard only; the run takes well under a second
	for n := 0; n < tt.events; n++ {
		select {
		case r := <-results:
			if r.Code != http.StatusOK {
				t.Fatalf("SDK gave up on an event: code %d, %s", r.Code, r.Message)
			}
		case <-deadline:
			st := srv.Stats()
			t.Fatalf("only %d of %d events delivered; stats %+v", n, tt.events, st)
		}
	}
	client.Shutdown()

	st := srv.Stats()
	for _, s := range tt.wantStatuses {
		if st.Responses[s] == 0 {
			t.Errorf("no %d answer; responses %v", s, st.Responses)
		}
	}
	if adv.throttle.Load() == 0 {
		t.Errorf("the SDK was never throttled")
	}
	if st.EventsDuplicate != tt.wantDuplicates {
		t.Errorf("duplicates=%d, want %d", st.EventsDuplicate, tt.wantDuplicates)
	}
	if got := srv.MaxWindowEPS(); got > tt.limitEPS {
		t.Errorf("an id reached %v events/s, over the %v limit", got, tt.limitEPS)
	}
	seen := map[string]int{}
	for _, e := range srv.Events() {
		seen[e.InsertID]++
		if !bytes.Contains(e.Event, []byte(`"library":"amplitude-go/1.3.1"`)) {
			t.Fatalf("event kept without the SDK's library field: %s", e.Event)
		}
	}
	for i := range tt.events {
		id := fmt.Sprintf("%s-%05d", tt.name, i)
		if seen[id] != 1 {
			t.Errorf("event %s landed %d times, want exactly once", id, seen[id])
		}
	}
	if got := len(seen); got != tt.events {
		t.Errorf("%d distinct events landed, want %d", got, tt.events)
	}
	t.Logf("%s: responses %v, %d throttled requests, %d duplicates absorbed", tt.name, st.Responses, adv.throttle.Load(), st.EventsDuplicate)
}
