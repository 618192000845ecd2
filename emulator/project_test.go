package emulator_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/backfillhq/backfill/emulator"
)

// TestProjectLimits: the project-wide limits count per API key over the
// last second, on both endpoints together, and answer the documented 429
// body with every per-id list empty.
func TestProjectLimits(t *testing.T) {
	type step struct {
		advance time.Duration
		key     string
		path    string
		events  int
		want    int
	}
	tests := []struct {
		name     string
		eps, rps int
		steps    []step
	}{
		{name: "EPS", eps: 1000, steps: []step{
			{events: 600, want: 200},
			{events: 500, want: 429}, // 1,100 in the window
			{events: 400, want: 200}, // exactly 1,000
			{advance: 999 * time.Millisecond, events: 1, want: 429},
			{advance: time.Millisecond, events: 600, want: 200}, // the window is (t-1s, t]: the first 1,000 left
			{events: 1001, want: 429},                           // never fits
			{path: emulator.PathHTTP, events: 401, want: 429},   // both endpoints count
			{path: emulator.PathHTTP, events: 400, want: 200},
			{key: "other-key-01", events: 1000, want: 200}, // per API key
		}},
		{name: "RPS", rps: 2, steps: []step{
			{events: 1, want: 200},
			{events: 1, want: 200},
			{events: 1, want: 429},
			{advance: time.Second, events: 1, want: 200},
		}},
		{name: "Both", eps: 100, rps: 3, steps: []step{
			{events: 50, want: 200},
			{events: 60, want: 429},
			{events: 10, want: 200},
			{events: 10, want: 200},
			{events: 10, want: 429}, // fourth request
		}},
		{name: "Off", steps: []step{
			{events: 2000, want: 200},
			{events: 2000, want: 200},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := newServer(t, emulator.Config{ProjectEPS: tt.eps, ProjectRPS: tt.rps})
			var want429, sent int
			for i, st := range tt.steps {
				c.Advance(st.advance)
				key, path := st.key, st.path
				if key == "" {
					key = testKey
				}
				if path == "" {
					path = emulator.PathBatch
				}
				// Each request its own devices, so no per-id limit applies.
				events := make([]string, st.events)
				for j := range events {
					events[j] = ev(fmt.Sprintf("device-%d-%d", i, j), fmt.Sprintf("ins-%d-%d", i, j))
				}
				r := post(t, s, path, body(key, events...))
				if r.Status != st.want {
					t.Fatalf("step %d: status %d, want %d: %s", i, r.Status, st.want, r.Body)
				}
				sent += st.events
				if r.Status != http.StatusTooManyRequests {
					continue
				}
				want429++
				r.requireFields(t, "error", "eps_threshold", "throttled_devices", "throttled_users",
					"throttled_events", "exceeded_daily_quota_users", "exceeded_daily_quota_devices")
				if got := r.str(t, "error"); got != "Too many requests for this project" {
					t.Errorf("error %q", got)
				}
				if got := r.int(t, "eps_threshold"); got != int64(tt.eps) {
					t.Errorf("eps_threshold %d, want the project's %d", got, tt.eps)
				}
				if len(r.counts(t, "throttled_devices"))+len(r.counts(t, "throttled_users"))+len(r.ints(t, "throttled_events"))+
					len(r.counts(t, "exceeded_daily_quota_users"))+len(r.counts(t, "exceeded_daily_quota_devices")) != 0 {
					t.Errorf("a project-level 429 names ids: %s", r.Body)
				}
			}
			st := s.Stats()
			if st.ProjectThrottled != int64(want429) || st.Responses[429] != int64(want429) {
				t.Errorf("responses_429_project %d, 429s %d; want %d", st.ProjectThrottled, st.Responses[429], want429)
			}
			if st.EventsAccepted+st.EventsRejected != int64(sent) {
				t.Errorf("accepted %d + rejected %d != sent %d", st.EventsAccepted, st.EventsRejected, sent)
			}
		})
	}
}

// TestProjectMeasurement: max_project_eps/rps are measured whether or not
// a limit is set, over exactly one second, refused requests included.
func TestProjectMeasurement(t *testing.T) {
	s, c := newServer(t, emulator.Config{ProjectEPS: 100})
	send := func(n int) int {
		events := make([]string, n)
		for j := range events {
			events[j] = ev(fmt.Sprintf("device-%d", j), "")
		}
		return post(t, s, emulator.PathBatch, body(testKey, events...)).Status
	}
	send(60)
	c.Advance(500 * time.Millisecond)
	send(60) // refused, but seen: 120 in the window
	c.Advance(500 * time.Millisecond)
	send(30) // the first left: 90
	st := s.Stats()
	if st.MaxProjectEPS != 120 || st.MaxProjectRPS != 2 {
		t.Fatalf("max_project_eps %d, max_project_rps %d; want 120 and 2", st.MaxProjectEPS, st.MaxProjectRPS)
	}
	s.Reset()
	if st := s.Stats(); st.MaxProjectEPS != 0 || st.ProjectThrottled != 0 {
		t.Fatalf("Reset kept %+v", st)
	}
	if got := send(100); got != http.StatusOK {
		t.Fatalf("after Reset: %d", got)
	}
}
