package emulator_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/emulator"
)

func TestFailNext(t *testing.T) {
	two := body(testKey, ev("device-0001", "a"), ev("device-0002", "b"))
	tests := []struct {
		name     string
		arm      func(*emulator.Server)
		status   int
		fields   []string
		ingested int
	}{
		{"Before500", func(s *emulator.Server) { s.FailNext(1, 500) }, 500, []string{"error"}, 0},
		{"Before502", func(s *emulator.Server) { s.FailNext(1, 502) }, 502, []string{"error"}, 0},
		{"Before504", func(s *emulator.Server) { s.FailNext(1, 504) }, 504, []string{"error"}, 0},
		{"Unavailable503", func(s *emulator.Server) { s.FailNext(1, 503) }, 503, []string{"error"}, 0},
		{"Forbidden403", func(s *emulator.Server) { s.FailNext(1, 403) }, 403, []string{"error"}, 0},
		{"Forced400", func(s *emulator.Server) { s.FailNext(1, 400) }, 400, []string{"error", "events_with_invalid_fields", "events_with_missing_fields"}, 0},
		{"Forced413", func(s *emulator.Server) { s.FailNext(1, 413) }, 413, []string{"error"}, 0},
		{"Forced429", func(s *emulator.Server) { s.FailNext(1, 429) }, 429, []string{"error", "eps_threshold", "throttled_devices", "throttled_users", "throttled_events", "exceeded_daily_quota_users", "exceeded_daily_quota_devices"}, 0},
		{"After500", func(s *emulator.Server) { s.FailNextAfterIngest(1, 500) }, 500, []string{"error"}, 2},
		{"After502", func(s *emulator.Server) { s.FailNextAfterIngest(1, 502) }, 502, []string{"error"}, 2},
		{"After504", func(s *emulator.Server) { s.FailNextAfterIngest(1, 504) }, 504, []string{"error"}, 2},
	}
	for _, path := range paths {
		for _, tt := range tests {
			t.Run(strings.TrimPrefix(path, "/")+"/"+tt.name, func(t *testing.T) {
				s, _ := newServer(t, emulator.Config{})
				tt.arm(s)
				r := post(t, s, path, two)
				if r.Status != tt.status {
					t.Fatalf("status %d, want %d: %s", r.Status, tt.status, r.Body)
				}
				r.requireFields(t, tt.fields...)
				if tt.status == 429 {
					if got, want := r.ints(t, "throttled_events"), []int{0, 1}; !reflect.DeepEqual(got, want) {
						t.Errorf("throttled_events=%v, want %v", got, want)
					}
					if got := len(r.counts(t, "throttled_devices")); got != 2 {
						t.Errorf("throttled_devices=%s, want both devices", r.Fields["throttled_devices"])
					}
				}
				if got := len(s.Events()); got != tt.ingested {
					t.Fatalf("%d events ingested by the failed request, want %d", got, tt.ingested)
				}
				// The retry succeeds; with ingest-then-fail it is all duplicates.
				r = post(t, s, path, two)
				requireOK(t, r)
				if got := len(s.Events()); got != 2 {
					t.Errorf("%d events after retry, want 2", got)
				}
				st := s.Stats()
				if got, want := st.EventsDuplicate, int64(tt.ingested); got != want {
					t.Errorf("EventsDuplicate=%d, want %d", got, want)
				}
				if st.Responses[tt.status] != 1 || st.Responses[200] != 1 {
					t.Errorf("Responses=%v", st.Responses)
				}
			})
		}
	}
}

func TestFailNextAfterIngestInvalidRequest(t *testing.T) {
	s, _ := newServer(t, emulator.Config{})
	s.FailNextAfterIngest(1, 500)
	r := post(t, s, "/batch", body(testKey, `{"event_type":"e"}`))
	if r.Status != 400 {
		t.Fatalf("status %d, want the real 400", r.Status)
	}
	requireOK(t, post(t, s, "/batch", body(testKey, ev("device-0001", ""))))
}

func TestFailNextPanicsOnBadStatus(t *testing.T) {
	s, _ := newServer(t, emulator.Config{})
	defer func() {
		if recover() == nil {
			t.Fatal("FailNext(1, 200) did not panic")
		}
	}()
	s.FailNext(1, 200)
}

func TestDropConnection(t *testing.T) {
	tests := []struct {
		name string
		cfg  emulator.Config
		arm  func(*emulator.Server)
	}{
		{"DropNext", emulator.Config{}, func(s *emulator.Server) { s.DropNext(1) }},
		{"DropRate", emulator.Config{Faults: emulator.Faults{DropRate: 1}}, func(*emulator.Server) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newServer(t, tt.cfg)
			ts := httptest.NewServer(s)
			defer ts.Close()
			tt.arm(s)
			resp, err := ts.Client().Post(ts.URL+"/batch", "application/json", bytes.NewReader(body(testKey, ev("device-0001", "a"))))
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got status %d, want a dropped connection", resp.StatusCode)
			}
			st := s.Stats()
			if st.Dropped != 1 || st.EventsAccepted != 0 || st.RequestsBatch != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestFaultRates(t *testing.T) {
	tests := []struct {
		name     string
		faults   emulator.Faults
		statuses []int
		ingested bool
	}{
		{"Forbidden", emulator.Faults{ForbiddenRate: 1}, []int{403}, false},
		{"Unavailable", emulator.Faults{UnavailableRate: 1}, []int{503}, false},
		{"FailBefore", emulator.Faults{FailBeforeRate: 1}, []int{500, 502, 504}, false},
		{"FailBeforeCustom", emulator.Faults{FailBeforeRate: 1, ServerErrors: []int{599}}, []int{599}, false},
		{"FailAfter", emulator.Faults{FailAfterRate: 1}, []int{500, 502, 504}, true},
		{"TooLarge", emulator.Faults{TooLargeRate: 1}, []int{413}, false},
		{"Throttle", emulator.Faults{ThrottleRate: 1}, []int{429}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newServer(t, emulator.Config{Faults: tt.faults})
			seen := map[int]bool{}
			for i := range 30 {
				r := post(t, s, "/2/httpapi", body(testKey, ev("device-0001", fmt.Sprint(i))))
				if !containsInt(tt.statuses, r.Status) {
					t.Fatalf("status %d, want one of %v", r.Status, tt.statuses)
				}
				r.requireFields(t, "error")
				seen[r.Status] = true
			}
			if len(seen) != len(tt.statuses) {
				t.Errorf("saw statuses %v in 30 requests, want all of %v", seen, tt.statuses)
			}
			if got := len(s.Events()) > 0; got != tt.ingested {
				t.Errorf("ingested=%v, want %v", got, tt.ingested)
			}
		})
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestFaultsDeterministic: the same seed gives the same outcomes; another
// seed gives others; rates are roughly respected.
func TestFaultsDeterministic(t *testing.T) {
	run := func(seed int64) []int {
		cfg := emulator.Config{Seed: seed, Faults: emulator.Faults{FailAfterRate: 0.2, UnavailableRate: 0.2, ThrottleRate: 0.1}}
		s, _ := newServer(t, cfg)
		var out []int
		for i := range 200 {
			out = append(out, post(t, s, "/batch", body(testKey, ev("device-0001", fmt.Sprint(i)))).Status)
		}
		return out
	}
	a, b, c := run(7), run(7), run(8)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different outcomes")
	}
	if reflect.DeepEqual(a, c) {
		t.Fatalf("different seeds, same outcomes")
	}
	ok := 0
	for _, s := range a {
		if s == 200 {
			ok++
		}
	}
	if ok < 70 || ok > 130 { // expected 100
		t.Errorf("%d of 200 requests succeeded with 50%% fault rate", ok)
	}
}

func TestLatency(t *testing.T) {
	var mu sync.Mutex
	var slept []time.Duration
	cfg := emulator.Config{
		Seed:   1,
		Faults: emulator.Faults{Latency: 2 * time.Second, Jitter: time.Second},
		Sleep: func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			slept = append(slept, d)
			return nil
		},
	}
	s, _ := newServer(t, cfg)
	for i := range 20 {
		requireOK(t, post(t, s, "/batch", body(testKey, ev("device-0001", fmt.Sprint(i)))))
	}
	if len(slept) != 20 {
		t.Fatalf("slept %d times, want 20", len(slept))
	}
	distinct := map[time.Duration]bool{}
	for _, d := range slept {
		if d < 2*time.Second || d >= 3*time.Second {
			t.Errorf("latency %v outside [2s,3s)", d)
		}
		distinct[d] = true
	}
	if len(distinct) < 10 {
		t.Errorf("jitter gave only %d distinct delays", len(distinct))
	}
	// A cancelled sleep ends the request without ingesting.
	cfg.Sleep = func(ctx context.Context, d time.Duration) error { return context.Canceled }
	s2, _ := newServer(t, cfg)
	rec := httptest.NewRecorder()
	s2.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/batch", bytes.NewReader(body(testKey, ev("device-0001", "")))))
	if len(s2.Events()) != 0 {
		t.Errorf("cancelled request ingested")
	}
}

func TestInspectionEndpoints(t *testing.T) {
	s, _ := newServer(t, emulator.Config{})
	post(t, s, "/batch", body(testKey, ev("device-0001", "a"), ev("device-0001", "b")))
	post(t, s, "/batch", body(testKey, ev("device-0001", "a")))
	post(t, s, "/2/httpapi", body(testKey, ev("device-0002", "c")))
	post(t, s, "/2/httpapi", []byte(`{`))
	post(t, s, "/elsewhere", nil)

	r := do(t, s, http.MethodGet, "/_emulator/stats", nil)
	if r.Status != 200 {
		t.Fatalf("stats status %d", r.Status)
	}
	for k, want := range map[string]int64{"requests_batch": 2, "requests_httpapi": 2, "requests_other": 1,
		"events_accepted": 3, "events_duplicate": 1} {
		if got := r.int(t, k); got != want {
			t.Errorf("%s=%d, want %d", k, got, want)
		}
	}
	if got, want := r.counts(t, "responses"), map[string]int64{"200": 3, "400": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("responses=%v, want %v", got, want)
	}

	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/_emulator/events", nil))
	if rec.Code != 200 {
		t.Fatalf("events status %d", rec.Code)
	}
	var got []emulator.Recorded
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		var e emulator.Recorded
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, e)
	}
	if len(got) != 3 || got[0].Route != backfill.RouteBatch || got[2].Route != backfill.RouteHTTP ||
		string(got[1].Event) != ev("device-0001", "b") {
		t.Errorf("events %+v", got)
	}

	if r := do(t, s, http.MethodPost, "/_emulator/reset", nil); r.Status != 200 {
		t.Fatalf("reset status %d", r.Status)
	}
	st := s.Stats()
	if st.RequestsBatch != 0 || st.EventsAccepted != 0 || len(st.Responses) != 0 || len(s.Events()) != 0 {
		t.Errorf("after reset: %+v", st)
	}
	// Dedupe memory is gone too.
	requireOK(t, post(t, s, "/batch", body(testKey, ev("device-0001", "a"))))
	if s.Stats().EventsAccepted != 1 {
		t.Errorf("reset kept dedupe entries")
	}
}

// TestConcurrentOrder sends from several goroutines, each one device, and
// checks every device's events are recorded in send order.
func TestConcurrentOrder(t *testing.T) {
	s, _ := newServer(t, emulator.Config{BatchEPS: emulator.Unlimited})
	ts := httptest.NewServer(s)
	defer ts.Close()
	const devices, reqs, per = 4, 10, 50
	var wg sync.WaitGroup
	for d := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev := fmt.Sprintf("device-%04d", d)
			for r := range reqs {
				var es []string
				for i := range per {
					es = append(es, ev(dev, fmt.Sprintf("%06d", r*per+i)))
				}
				resp, err := ts.Client().Post(ts.URL+"/batch", "application/json", bytes.NewReader(body(testKey, es...)))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	last := map[string]string{}
	n := 0
	for _, e := range s.Events() {
		if e.InsertID <= last[e.DeviceID] {
			t.Fatalf("device %s: %s after %s", e.DeviceID, e.InsertID, last[e.DeviceID])
		}
		last[e.DeviceID] = e.InsertID
		n++
	}
	if n != devices*reqs*per {
		t.Errorf("%d events, want %d", n, devices*reqs*per)
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) { w.n++; return 0, io.ErrClosedPipe }

func TestRecordWriteErrorDoesNotFailRequests(t *testing.T) {
	w := &failWriter{}
	s, _ := newServer(t, emulator.Config{Record: w, Logger: discardLogger()})
	requireOK(t, post(t, s, "/batch", body(testKey, ev("device-0001", "a"))))
	requireOK(t, post(t, s, "/batch", body(testKey, ev("device-0001", "b"))))
	if w.n != 2 {
		t.Errorf("%d writes, want 2", w.n)
	}
}
