package emulator_test

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill/emulator"
)

func requireOK(t testing.TB, r resp) {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("status %d, want 200; body %s", r.Status, r.Body)
	}
}

func require429(t testing.TB, r resp, threshold int64) {
	t.Helper()
	if r.Status != 429 {
		t.Fatalf("status %d, want 429; body %s", r.Status, r.Body)
	}
	r.requireFields(t, "error", "eps_threshold", "throttled_devices", "throttled_users", "throttled_events",
		"exceeded_daily_quota_users", "exceeded_daily_quota_devices")
	if got := r.int(t, "eps_threshold"); got != threshold {
		t.Errorf("eps_threshold=%d, want %d", got, threshold)
	}
}

// sendN posts n events for dev in requests of at most 100 and fails on any
// non-200.
func sendN(t testing.TB, s *emulator.Server, path, dev string, n int, tag string) {
	t.Helper()
	for i := 0; i < n; i += 100 {
		k := min(100, n-i)
		requireOK(t, post(t, s, path, body(testKey, evs(dev, fmt.Sprintf("%s-%d", tag, i), k)...)))
	}
}

// TestThrottleSlidingWindow checks the 30 s average, on both endpoints with
// their own thresholds, using the injected clock.
func TestThrottleSlidingWindow(t *testing.T) {
	tests := []struct {
		path      string
		cfg       emulator.Config
		threshold int64
	}{
		{emulator.PathHTTP, emulator.Config{}, emulator.DefaultHTTPEPS},
		{emulator.PathBatch, emulator.Config{BatchEPS: 20}, 20},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			s, c := newServer(t, tt.cfg)
			limit := int(tt.threshold * 30)
			half := limit / 2
			sendN(t, s, tt.path, "device-0001", half, "a") // at 0 s
			c.Advance(15 * time.Second)
			sendN(t, s, tt.path, "device-0001", limit-half, "b") // at 15 s: window full
			c.Advance(14900 * time.Millisecond)                  // 29.9 s: first half still in window

			r := post(t, s, tt.path, body(testKey, ev("device-0002", "x"), ev("device-0001", "y"), ev("device-0003", "z")))
			require429(t, r, tt.threshold)
			if got, want := r.counts(t, "throttled_devices"), map[string]int64{"device-0001": tt.threshold + 1}; !reflect.DeepEqual(got, want) {
				t.Errorf("throttled_devices=%v, want %v", got, want)
			}
			if got, want := r.ints(t, "throttled_events"), []int{1}; !reflect.DeepEqual(got, want) {
				t.Errorf("throttled_events=%v, want %v", got, want)
			}
			if n := len(r.counts(t, "throttled_users")) + len(r.counts(t, "exceeded_daily_quota_users")) + len(r.counts(t, "exceeded_daily_quota_devices")); n != 0 {
				t.Errorf("unexpected entries in %s", r.Body)
			}
			if got := len(s.Events()); got != limit {
				t.Fatalf("a 429 ingested events: %d recorded, want %d", got, limit)
			}
			// Another device is not affected.
			requireOK(t, post(t, s, tt.path, body(testKey, ev("device-0002", "x"))))
			// Same device under another API key has its own counter.
			requireOK(t, post(t, s, tt.path, body("other-key", ev("device-0001", "y"))))

			c.Advance(100 * time.Millisecond) // 30 s: the first half left the window
			sendN(t, s, tt.path, "device-0001", half, "c")
			require429(t, post(t, s, tt.path, body(testKey, ev("device-0001", "d"))), tt.threshold)
			if got, want := s.MaxWindowEPS(), float64(tt.threshold); got != want {
				t.Errorf("MaxWindowEPS=%v, want %v", got, want)
			}
		})
	}
}

func TestThrottleUsersAndSharedCounter(t *testing.T) {
	s, c := newServer(t, emulator.Config{BatchEPS: 100})
	// 900 events for one user spread over many devices via /batch: fine for
	// /batch (limit 3000) but over /2/httpapi's 900.
	for i := range 9 {
		var es []string
		for j := range 100 {
			es = append(es, fmt.Sprintf(`{"event_type":"e","user_id":"user-0001","device_id":"device-%d-%d"}`, i, j))
		}
		requireOK(t, post(t, s, "/batch", body(testKey, es...)))
	}
	c.Advance(time.Second)
	r := post(t, s, "/2/httpapi", body(testKey, `{"event_type":"e","user_id":"user-0002"}`, `{"event_type":"e","user_id":"user-0001","device_id":"device-new"}`))
	require429(t, r, emulator.DefaultHTTPEPS)
	if got, want := r.counts(t, "throttled_users"), map[string]int64{"user-0001": 31}; !reflect.DeepEqual(got, want) {
		t.Errorf("throttled_users=%v, want %v", got, want)
	}
	if got, want := r.ints(t, "throttled_events"), []int{1}; !reflect.DeepEqual(got, want) {
		t.Errorf("throttled_events=%v, want %v", got, want)
	}
	// /batch still accepts the same user.
	requireOK(t, post(t, s, "/batch", body(testKey, `{"event_type":"e","user_id":"user-0001"}`)))
	peaks := s.Peaks()
	if len(peaks) == 0 || peaks[0].Kind != "user" || peaks[0].ID != "user-0001" || peaks[0].EPS != 901.0/30 {
		t.Errorf("top peak %+v, want user-0001 at %v", peaks[0], 901.0/30)
	}
}

func TestThrottleSingleRequestOverLimit(t *testing.T) {
	s, _ := newServer(t, emulator.Config{})
	r := post(t, s, "/2/httpapi", body(testKey, evs("device-0001", "a", 901)...))
	require429(t, r, 30)
	if got := len(r.ints(t, "throttled_events")); got != 901 {
		t.Errorf("%d throttled events, want 901", got)
	}
}

func TestThrottleUnlimited(t *testing.T) {
	s, _ := newServer(t, emulator.Config{HTTPEPS: emulator.Unlimited, DailyQuota: emulator.Unlimited})
	sendN(t, s, "/2/httpapi", "device-0001", 5000, "a")
	if got := s.Stats().EventsAccepted; got != 5000 {
		t.Fatalf("accepted %d, want 5000", got)
	}
}

func TestDailyQuota(t *testing.T) {
	s, c := newServer(t, emulator.Config{DailyQuota: 300, BatchEPS: emulator.Unlimited})
	c.Advance(10 * time.Minute)
	sendN(t, s, "/batch", "device-0001", 200, "a") // hour 0
	c.Advance(5 * time.Hour)
	sendN(t, s, "/batch", "device-0001", 100, "b") // hour 5: quota used up

	r := post(t, s, "/batch", body(testKey, ev("device-0002", "x"), `{"event_type":"e","device_id":"device-0001","user_id":"user-0001"}`))
	require429(t, r, 0)
	if got, want := r.counts(t, "exceeded_daily_quota_devices"), map[string]int64{"device-0001": 300}; !reflect.DeepEqual(got, want) {
		t.Errorf("exceeded_daily_quota_devices=%v, want %v", got, want)
	}
	if got, want := r.ints(t, "throttled_events"), []int{1}; !reflect.DeepEqual(got, want) {
		t.Errorf("throttled_events=%v, want %v", got, want)
	}
	if n := len(r.counts(t, "throttled_devices")); n != 0 {
		t.Errorf("throttled_devices not empty: %s", r.Body)
	}
	c.Advance(18*time.Hour + 40*time.Minute) // 23:50, hour 23: hour 0 still counts
	require429(t, post(t, s, "/batch", body(testKey, ev("device-0001", "y"))), 0)
	c.Advance(10 * time.Minute) // 24:00: hour 0 rolled out, 200 freed
	sendN(t, s, "/batch", "device-0001", 200, "c")
	require429(t, post(t, s, "/batch", body(testKey, ev("device-0001", "z"))), 0)

	// Users have their own quota.
	s2, _ := newServer(t, emulator.Config{DailyQuota: 2})
	requireOK(t, post(t, s2, "/2/httpapi", body(testKey, `{"event_type":"e","user_id":"user-0001"}`, `{"event_type":"e","user_id":"user-0001"}`)))
	r = post(t, s2, "/2/httpapi", body(testKey, `{"event_type":"e","user_id":"user-0001"}`))
	require429(t, r, 30)
	if got, want := r.counts(t, "exceeded_daily_quota_users"), map[string]int64{"user-0001": 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("exceeded_daily_quota_users=%v, want %v", got, want)
	}
}

// TestDailyQuotaRefusesIDsThatReachedIt checks the documented rule: ids
// that have reached the quota are refused; a request that takes an id from
// below the quota to over it is accepted, and the id's next request, however
// small, is refused (the case Amplitude's own SDKs disagreed with the
// emulator about).
func TestDailyQuotaRefusesIDsThatReachedIt(t *testing.T) {
	s, _ := newServer(t, emulator.Config{DailyQuota: 30, BatchEPS: emulator.Unlimited})
	sendN(t, s, "/batch", "device-0001", 20, "a") // at 20 of 30
	sendN(t, s, "/batch", "device-0001", 15, "b") // 20 + 15 > 30, but 20 < 30: accepted
	if got := s.Stats().EventsAccepted; got != 35 {
		t.Fatalf("accepted %d, want 35", got)
	}
	r := post(t, s, "/batch", body(testKey, ev("device-0002", "c"), ev("device-0001", "d")))
	require429(t, r, 0)
	if got, want := r.counts(t, "exceeded_daily_quota_devices"), map[string]int64{"device-0001": 35}; !reflect.DeepEqual(got, want) {
		t.Errorf("exceeded_daily_quota_devices=%v, want %v", got, want)
	}
	if got, want := r.ints(t, "throttled_events"), []int{1}; !reflect.DeepEqual(got, want) {
		t.Errorf("throttled_events=%v, want %v", got, want)
	}
	// The other device's event was not throttled; alone it goes through.
	requireOK(t, post(t, s, "/batch", body(testKey, ev("device-0002", "c"))))
}

// TestRequestLargerThanWindow: on /2/httpapi (30 events/s × 30 s = 900
// events per id per window) a request holding 901 events of one device is
// refused even on an idle server, and the 429 body says why; 900 are
// accepted.
func TestRequestLargerThanWindow(t *testing.T) {
	s, _ := newServer(t, emulator.Config{DailyQuota: emulator.Unlimited})
	evs := make([]string, 901)
	for i := range evs {
		evs[i] = ev("device-0001", fmt.Sprintf("i%d", i))
	}
	r := post(t, s, "/2/httpapi", body(testKey, evs...))
	require429(t, r, 30)
	if got, want := r.counts(t, "request_exceeds_window_devices"), map[string]int64{"device-0001": 901}; !reflect.DeepEqual(got, want) {
		t.Errorf("request_exceeds_window_devices=%v, want %v", got, want)
	}
	if got := r.int(t, "max_events_per_id_per_window"); got != 900 {
		t.Errorf("max_events_per_id_per_window=%v, want 900", got)
	}
	if got := r.str(t, "emulator_hint"); !strings.Contains(got, "never be accepted") {
		t.Errorf("emulator_hint=%q", got)
	}
	requireOK(t, post(t, s, "/2/httpapi", body(testKey, evs[:900]...)))

	// An ordinary throttle (the window is full) has no such fields.
	r = post(t, s, "/2/httpapi", body(testKey, ev("device-0001", "more")))
	require429(t, r, 30)
	for _, k := range []string{"request_exceeds_window_devices", "request_exceeds_window_users", "max_events_per_id_per_window", "emulator_hint"} {
		if _, ok := r.Fields[k]; ok {
			t.Errorf("%s in an ordinary 429: %s", k, r.Body)
		}
	}
}

func TestDedupe(t *testing.T) {
	s, c := newServer(t, emulator.Config{})
	first := `{"event_type":"first","device_id":"device-0001","insert_id":"ins-1"}`
	again := `{"event_type":"second","device_id":"device-0001","insert_id":"ins-1"}`
	r := post(t, s, "/batch", body(testKey, first, again)) // duplicate inside one request
	requireOK(t, r)
	if got := r.int(t, "events_ingested"); got != 2 {
		t.Errorf("events_ingested=%d, want 2 (duplicates count)", got)
	}
	steps := []struct {
		name      string
		advance   time.Duration
		path      string
		key, ev   string
		wantNew   bool
		wantEvent string
	}{
		{"SameKeyOtherEndpoint", time.Hour, "/2/httpapi", testKey, again, false, ""},
		{"OtherDevice", 0, "/batch", testKey, `{"event_type":"x","device_id":"device-0002","insert_id":"ins-1"}`, true, "x"},
		{"NoDeviceScope", 0, "/batch", testKey, `{"event_type":"y","user_id":"user-0001","insert_id":"ins-1"}`, true, "y"},
		{"NoDeviceScopeAgain", 0, "/batch", testKey, `{"event_type":"y2","user_id":"user-0002","insert_id":"ins-1"}`, false, ""},
		{"OtherAPIKey", 0, "/batch", "key-2", again, true, "second"},
		{"NoInsertIDNeverDeduped", 0, "/batch", testKey, `{"event_type":"n","device_id":"device-0001"}`, true, "n"},
		{"NoInsertIDNeverDedupedAgain", 0, "/batch", testKey, `{"event_type":"n","device_id":"device-0001"}`, true, "n"},
		{"StillWithin7Days", 7*24*time.Hour - time.Hour - time.Millisecond, "/batch", testKey, again, false, ""},
		{"After7Days", time.Millisecond, "/batch", testKey, again, true, "second"},
	}
	wantEvents := 1
	for _, st := range steps {
		c.Advance(st.advance)
		before := s.Stats()
		r := post(t, s, st.path, body(st.key, st.ev))
		requireOK(t, r)
		if got := r.int(t, "events_ingested"); got != 1 {
			t.Errorf("%s: events_ingested=%d, want 1", st.name, got)
		}
		after := s.Stats()
		evsNow := s.Events()
		if st.wantNew {
			wantEvents++
			if after.EventsAccepted != before.EventsAccepted+1 {
				t.Errorf("%s: not accepted", st.name)
			}
			if got := string(evsNow[len(evsNow)-1].Event); got != st.ev {
				t.Errorf("%s: last event %s, want %s", st.name, got, st.ev)
			}
		} else if after.EventsDuplicate != before.EventsDuplicate+1 {
			t.Errorf("%s: not counted as duplicate", st.name)
		}
		if len(evsNow) != wantEvents {
			t.Fatalf("%s: %d events recorded, want %d", st.name, len(evsNow), wantEvents)
		}
	}
	if got := string(s.Events()[0].Event); got != first {
		t.Errorf("first copy must win: got %s", got)
	}
}

func TestDedupeMemoryExpires(t *testing.T) {
	s, c := newServer(t, emulator.Config{DiscardEvents: true})
	for day := range 10 {
		requireOK(t, post(t, s, "/batch", body(testKey, evs("device-0001", "d"+strconv.Itoa(day), 100)...)))
		c.Advance(24 * time.Hour)
	}
	if got := s.Stats().DedupeEntries; got > 800 {
		t.Errorf("%d dedupe entries kept, want ≤ 800 (7 days)", got)
	}
	if got := s.Stats().TrackedIDs; got != 1 {
		t.Errorf("%d ids tracked, want 1", got)
	}
	c.Advance(48 * time.Hour)
	requireOK(t, post(t, s, "/batch", body(testKey, ev("device-0002", ""))))
	if got := s.Stats().TrackedIDs; got != 1 {
		t.Errorf("%d ids tracked after idle day, want 1 (idle ids forgotten)", got)
	}
	if got := len(s.Events()); got != 0 {
		t.Errorf("DiscardEvents kept %d events", got)
	}
	if got := s.MaxWindowEPS(); got != 100.0/30 {
		t.Errorf("MaxWindowEPS=%v after forgetting ids, want %v", got, 100.0/30)
	}
}

func TestSilenced(t *testing.T) {
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			s, _ := newServer(t, emulator.Config{Silenced: []string{"dev-spam-77", "dev-spam-88"}})
			r := post(t, s, path, body(testKey, ev("dev-spam-77", ""), ev("device-0001", ""), ev("dev-spam-88", ""), ev("dev-spam-77", "")))
			if r.Status != 400 {
				t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
			}
			r.requireFields(t, "error", "eps_threshold", "exceeded_daily_quota_devices", "silenced_devices",
				"silenced_events", "throttled_devices", "throttled_events")
			if got := r.str(t, "error"); got != "Events silenced for device_id" {
				t.Errorf("error=%q", got)
			}
			if got, want := r.ints(t, "silenced_events"), []int{0, 2, 3}; !reflect.DeepEqual(got, want) {
				t.Errorf("silenced_events=%v, want %v", got, want)
			}
			if string(r.Fields["silenced_devices"]) != `["dev-spam-77","dev-spam-88"]` {
				t.Errorf("silenced_devices=%s", r.Fields["silenced_devices"])
			}
			if len(s.Events()) != 0 {
				t.Errorf("silenced request ingested events")
			}
			requireOK(t, post(t, s, path, body(testKey, ev("device-0001", ""))))
		})
	}
}
