package emulator

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/backfillhq/backfill"
)

// Recorded is one accepted, non-duplicate event.
type Recorded struct {
	// Route is the endpoint that accepted the event.
	Route backfill.Route
	// Event is the event JSON as received (whitespace is compacted only
	// when the event spanned several lines, and string values longer than
	// MaxStringLength characters are truncated).
	Event json.RawMessage
	// DeviceID, UserID and InsertID are the ids the emulator used; ""
	// when absent. They are not part of the JSON form.
	DeviceID, UserID, InsertID string
}

// MarshalJSON renders {"endpoint":"batch"|"httpapi","event":{...}}.
func (r Recorded) MarshalJSON() ([]byte, error) {
	return appendRecordLine(nil, r.Route, r.Event), nil
}

// UnmarshalJSON reads the form written by MarshalJSON. Only Route and Event
// are filled.
func (r *Recorded) UnmarshalJSON(b []byte) error {
	var v struct {
		Endpoint string          `json:"endpoint"`
		Event    json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v.Endpoint {
	case "batch":
		r.Route = backfill.RouteBatch
	case "httpapi":
		r.Route = backfill.RouteHTTP
	default:
		return fmt.Errorf("unknown endpoint %q", v.Endpoint)
	}
	r.Event = v.Event
	return nil
}

func appendRecordLine(dst []byte, route backfill.Route, raw []byte) []byte {
	dst = append(dst, `{"endpoint":"`...)
	dst = append(dst, route.String()...)
	dst = append(dst, `","event":`...)
	dst = append(dst, raw...)
	return append(dst, '}')
}

// Stats are the emulator's counters.
type Stats struct {
	// RequestsBatch and RequestsHTTP count requests to /batch and
	// /2/httpapi, whatever their outcome.
	RequestsBatch int64 `json:"requests_batch"`
	RequestsHTTP  int64 `json:"requests_httpapi"`
	// RequestsOther counts requests to unknown paths.
	RequestsOther int64 `json:"requests_other"`
	// EventsAccepted counts ingested events that were not duplicates.
	EventsAccepted int64 `json:"events_accepted"`
	// EventsDuplicate counts ingested events dropped by dedupe.
	EventsDuplicate int64 `json:"events_duplicate"`
	// EventsRejected counts events in requests answered 400, 413 or 429
	// after the events array was read.
	EventsRejected int64 `json:"events_rejected"`
	// Responses counts answers to /batch and /2/httpapi by HTTP status.
	Responses map[int]int64 `json:"responses"`
	// Dropped counts connections closed without an answer.
	Dropped int64 `json:"connections_dropped"`
	// IngestedThenFailed counts requests ingested and answered 5xx.
	IngestedThenFailed int64 `json:"ingested_then_failed"`
	// StringsTruncated counts string values cut to MaxStringLength
	// characters in stored events (counted when events are kept or
	// recorded).
	StringsTruncated int64 `json:"strings_truncated"`
	// MaxWindowEPS is MaxWindowEPS at the time of the snapshot.
	MaxWindowEPS float64 `json:"max_window_eps"`
	// ProjectThrottled counts the 429s of the project-wide limits
	// (Config.ProjectEPS, ProjectRPS; also in Responses[429]).
	ProjectThrottled int64 `json:"responses_429_project"`
	// MaxProjectEPS and MaxProjectRPS are the most events and requests one
	// API key sent in any ProjectWindow (1 s), counting every request that
	// got past body validation, refused or not.
	MaxProjectEPS int64 `json:"max_project_eps"`
	MaxProjectRPS int64 `json:"max_project_rps"`
	// TrackedIDs and DedupeEntries show memory use.
	TrackedIDs    int `json:"tracked_ids"`
	DedupeEntries int `json:"dedupe_entries"`
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Responses = make(map[int]int64, len(s.stats.Responses))
	for k, v := range s.stats.Responses {
		st.Responses[k] = v
	}
	st.MaxWindowEPS = float64(s.maxPeakLocked()) / ThrottleWindow.Seconds()
	st.MaxProjectEPS, st.MaxProjectRPS = s.proj.maxEPS, s.proj.maxRPS
	st.TrackedIDs = len(s.ids)
	st.DedupeEntries = s.dd.len()
	return st
}

// Events returns the accepted, non-duplicate events in arrival order (so
// per-device order is the order the server ingested them). It is empty when
// Config.DiscardEvents is set.
func (s *Server) Events() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events.all()
}

// Peak is the highest throttle-window load seen for one id.
type Peak struct {
	// Kind is "device" or "user".
	Kind string
	ID   string
	// EPS is the window count right after an accepted request, divided by
	// the window length in seconds.
	EPS float64
}

// Peaks lists the peak window rate of every id still tracked (ids idle for
// 24 h are forgotten), highest first.
func (s *Server) Peaks() []Peak {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Peak, 0, len(s.ids))
	for _, st := range s.ids {
		kind := "device"
		if st.kind == 'u' {
			kind = "user"
		}
		out = append(out, Peak{Kind: kind, ID: st.id, EPS: float64(st.peak) / ThrottleWindow.Seconds()})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].EPS != out[j].EPS {
			return out[i].EPS > out[j].EPS
		}
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// MaxWindowEPS is the highest 30 s-average rate any single device_id or
// user_id reached right after an accepted request. A client that respects
// a limit of N events/s keeps it ≤ N.
func (s *Server) MaxWindowEPS() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return float64(s.maxPeakLocked()) / ThrottleWindow.Seconds()
}

func (s *Server) maxPeakLocked() int64 {
	m := s.peakGone
	for _, st := range s.ids {
		m = max(m, st.peak)
	}
	return m
}
