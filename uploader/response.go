package uploader

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"

	"github.com/backfillhq/backfill"

	"github.com/backfillhq/backfill/internal/redact"
)

// response is the union of the JSON fields Amplitude documents for every
// status (amplitude-api.md §6). Map values are kept raw: only the keys (ids)
// matter here, and a proxy or a future API version may change their type.
type response struct {
	Code                       int                        `json:"code"`
	Error                      string                     `json:"error"`
	MissingField               string                     `json:"missing_field"`
	EventsIngested             int                        `json:"events_ingested"`
	EventsWithInvalidFields    map[string][]int           `json:"events_with_invalid_fields"`
	EventsWithMissingFields    map[string][]int           `json:"events_with_missing_fields"`
	EventsWithInvalidIDLengths map[string][]int           `json:"events_with_invalid_id_lengths"`
	SilencedDevices            []string                   `json:"silenced_devices"`
	SilencedEvents             []int                      `json:"silenced_events"`
	ThrottledEvents            []int                      `json:"throttled_events"`
	ThrottledDevices           map[string]json.RawMessage `json:"throttled_devices"`
	ThrottledUsers             map[string]json.RawMessage `json:"throttled_users"`
	ExceededDailyQuotaDevices  map[string]json.RawMessage `json:"exceeded_daily_quota_devices"`
	ExceededDailyQuotaUsers    map[string]json.RawMessage `json:"exceeded_daily_quota_users"`
}

// parseResponse decodes what it can of body. A non-JSON body (a proxy's
// HTML page, an empty body) yields a zero response, so classification falls
// back to the status alone; a field of an unexpected type is skipped while
// the others are kept.
func parseResponse(body []byte) response {
	var r response
	_ = json.Unmarshal(body, &r)
	return r
}

// kind is what Send does with a request after one response.
type kind uint8

const (
	kindAccept   kind = iota // 2xx: all events accepted
	kindPartial              // 400 naming events: reject those, resend the rest
	kindSplit                // 413: halve, or reject a single event
	kindThrottle             // 429 naming events: throttle/park those, resend the rest
	kindRetry                // resend the same bytes after a backoff
	kindResplit              // resend the events in smaller requests (a lowered project ceiling)
	kindFatal                // stop: ErrFatal
)

// verdict is the classification of one response for the request holding
// events[cur...]. Positions (pos) index cur, not events.
type verdict struct {
	kind      kind
	message   string         // redacted error text, for logs and errors
	rejected  map[int]string // pos → reason (kindPartial)
	throttled []int          // pos (kindThrottle)
	parked    []int          // pos (kindThrottle)

	// project marks a 429 naming none of the request's ids (kindRetry):
	// a project-wide limit. timeout marks a transport timeout.
	project, timeout bool

	pauseDevices, pauseUsers []string // kindThrottle
	quotaDevices, quotaUsers []string // kindThrottle
}

// fatal400 lists the request-level 400 errors of amplitude-api.md §6/§7.
var fatal400 = []string{
	"Invalid API key",
	"Request missing required field",
	"Invalid JSON request body",
	"Missing request body",
	"Invalid request path",
}

// classify decides what to do after a response with the given status and
// body to the request holding events[cur...]. key is only used to redact.
func classify(status int, body []byte, events []backfill.Event, cur []int, key string) verdict {
	r := parseResponse(body)
	msg := redact.Text(r.Error, key)
	if msg == "" {
		msg = snippet(body, key, status)
	}
	v := verdict{message: msg}
	switch {
	case status >= 200 && status < 300:
		v.kind = kindAccept
	case status == http.StatusBadRequest:
		classify400(&v, r, events, cur, key)
	case status == http.StatusRequestEntityTooLarge:
		v.kind = kindSplit
	case status == http.StatusTooManyRequests:
		classify429(&v, r, events, cur)
	case status == http.StatusRequestTimeout || status >= 500:
		v.kind = kindRetry
	default: // 403 (WAF), 404/405 from a proxy, 1xx/3xx: nothing a retry fixes
		v.kind = kindFatal
	}
	return v
}

func classify400(v *verdict, r response, events []backfill.Event, cur []int, key string) {
	if r.MissingField != "" {
		v.kind = kindFatal
		v.message = redact.Text(r.Error+": "+r.MissingField, key)
		return
	}
	for _, prefix := range fatal400 {
		if strings.HasPrefix(r.Error, prefix) {
			v.kind = kindFatal
			return
		}
	}
	reasons := make(map[int][]string)
	add := func(pos int, reason string) {
		if pos < 0 || pos >= len(cur) {
			return // not an index of this request: ignore rather than crash
		}
		for _, have := range reasons[pos] {
			if have == reason {
				return
			}
		}
		reasons[pos] = append(reasons[pos], reason)
	}
	addFields := func(m map[string][]int, what string) {
		for _, field := range sortedKeys(m) {
			reason := what + " " + redact.Text(field, key)
			for _, pos := range m[field] {
				add(pos, reason)
			}
		}
	}
	addFields(r.EventsWithInvalidFields, "invalid field")
	addFields(r.EventsWithMissingFields, "missing field")
	addFields(r.EventsWithInvalidIDLengths, "invalid id length")
	for _, pos := range r.SilencedEvents {
		add(pos, "silenced device")
	}
	if len(r.SilencedDevices) > 0 {
		silenced := make(map[string]bool, len(r.SilencedDevices))
		for _, d := range r.SilencedDevices {
			silenced[d] = true
		}
		for pos, i := range cur {
			if d := events[i].DeviceID; d != "" && silenced[d] {
				add(pos, "silenced device")
			}
		}
	}
	if len(reasons) == 0 {
		// Not a documented per-event 400, and nothing to drop: resending
		// would loop forever.
		v.kind = kindFatal
		v.message += " (no event indexes in response)"
		return
	}
	v.kind = kindPartial
	v.rejected = make(map[int]string, len(reasons))
	for pos, rs := range reasons {
		v.rejected[pos] = strings.Join(rs, "; ")
	}
}

func classify429(v *verdict, r response, events []backfill.Event, cur []int) {
	listed := make(map[int]bool, len(r.ThrottledEvents))
	for _, pos := range r.ThrottledEvents {
		listed[pos] = true
	}
	has := func(m map[string]json.RawMessage, id string) bool {
		if id == "" {
			return false
		}
		_, ok := m[id]
		return ok
	}
	for pos, i := range cur {
		ev := &events[i]
		quota := has(r.ExceededDailyQuotaDevices, ev.DeviceID) || has(r.ExceededDailyQuotaUsers, ev.UserID)
		switch {
		case quota:
			v.parked = append(v.parked, pos)
		case listed[pos] || has(r.ThrottledDevices, ev.DeviceID) || has(r.ThrottledUsers, ev.UserID):
			v.throttled = append(v.throttled, pos)
		}
	}
	if len(v.parked)+len(v.throttled) == 0 {
		// A 429 that names none of our events: a project-wide limit (or a
		// proxy). Resend; with a ceiling, at its lowered rate (see
		// Options.Ceilings), else with backoff, bounded by MaxAttempts.
		v.kind = kindRetry
		v.project = true
		return
	}
	v.kind = kindThrottle
	v.pauseDevices = sortedKeys(r.ThrottledDevices)
	v.pauseUsers = sortedKeys(r.ThrottledUsers)
	v.quotaDevices = sortedKeys(r.ExceededDailyQuotaDevices)
	v.quotaUsers = sortedKeys(r.ExceededDailyQuotaUsers)
}

// snippet describes a body without a JSON "error": the status text plus the
// start of the body, redacted.
func snippet(body []byte, key string, status int) string {
	s := http.StatusText(status)
	b := redact.Text(strings.TrimSpace(string(body)), key) // before cutting, so no partial key survives
	if len(b) > 200 {
		b = b[:200] + "..."
	}
	if b != "" {
		if s != "" {
			s += ": "
		}
		s += b
	}
	return redact.Text(s, key)
}

func sortedKeys[V any](m map[string]V) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
