package emulator

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// errorBody is every simple error answer: {"code":N,"error":"..."}.
type errorBody struct {
	Code  int    `json:"code"`
	Error string `json:"error"`
}

// badRequestBody is the generic 400. missing_field is present only for the
// missing-field error: SDKs drop the whole request when it is set.
type badRequestBody struct {
	Code                       int              `json:"code"`
	Error                      string           `json:"error"`
	MissingField               string           `json:"missing_field,omitempty"`
	EventsWithInvalidFields    map[string][]int `json:"events_with_invalid_fields"`
	EventsWithMissingFields    map[string][]int `json:"events_with_missing_fields"`
	EventsWithInvalidIDLengths map[string][]int `json:"events_with_invalid_id_lengths"`
}

// silencedBody is the 400 for silenced devices.
type silencedBody struct {
	Code                      int              `json:"code"`
	Error                     string           `json:"error"`
	EPSThreshold              int              `json:"eps_threshold"`
	ExceededDailyQuotaDevices map[string]int64 `json:"exceeded_daily_quota_devices"`
	SilencedDevices           []string         `json:"silenced_devices"`
	SilencedEvents            []int            `json:"silenced_events"`
	ThrottledDevices          map[string]int64 `json:"throttled_devices"`
	ThrottledEvents           []int            `json:"throttled_events"`
}

// throttleBody is the 429.
type throttleBody struct {
	Code                      int              `json:"code"`
	Error                     string           `json:"error"`
	EPSThreshold              int              `json:"eps_threshold"`
	ThrottledDevices          map[string]int64 `json:"throttled_devices"`
	ThrottledUsers            map[string]int64 `json:"throttled_users"`
	ThrottledEvents           []int            `json:"throttled_events"`
	ExceededDailyQuotaUsers   map[string]int64 `json:"exceeded_daily_quota_users"`
	ExceededDailyQuotaDevices map[string]int64 `json:"exceeded_daily_quota_devices"`

	// The emulator's own fields, present only when the request alone holds
	// more events of one id than a throttle window allows (eps_threshold ×
	// 30 s): such a request is refused however long the client waits, so
	// the body says why. Amplitude documents nothing for this case; SDKs
	// ignore unknown fields.
	RequestExceedsWindowDevices map[string]int64 `json:"request_exceeds_window_devices,omitempty"`
	RequestExceedsWindowUsers   map[string]int64 `json:"request_exceeds_window_users,omitempty"`
	MaxEventsPerWindow          int64            `json:"max_events_per_id_per_window,omitempty"`
	Hint                        string           `json:"emulator_hint,omitempty"`
}

// addOverWindow lists an id of which the request holds n events, more than
// limit, the most one throttle window takes.
func (b *throttleBody) addOverWindow(kind byte, id string, n, limit int64) {
	m := &b.RequestExceedsWindowUsers
	if kind == 'd' {
		m = &b.RequestExceedsWindowDevices
	}
	if *m == nil {
		*m = map[string]int64{}
	}
	(*m)[id] = n
	b.MaxEventsPerWindow = limit
	b.Hint = "this request holds more events of one device_id or user_id than eps_threshold x 30 s allows; " +
		"it can never be accepted: split it so each id has at most max_events_per_id_per_window events per request"
}

func newBadRequest(msg string) *badRequestBody {
	return &badRequestBody{
		Code:                       http.StatusBadRequest,
		Error:                      msg,
		EventsWithInvalidFields:    map[string][]int{},
		EventsWithMissingFields:    map[string][]int{},
		EventsWithInvalidIDLengths: map[string][]int{},
	}
}

func newThrottle(threshold int) *throttleBody {
	return &throttleBody{
		Code:                      http.StatusTooManyRequests,
		Error:                     errThrottled,
		EPSThreshold:              threshold,
		ThrottledDevices:          map[string]int64{},
		ThrottledUsers:            map[string]int64{},
		ThrottledEvents:           []int{},
		ExceededDailyQuotaUsers:   map[string]int64{},
		ExceededDailyQuotaDevices: map[string]int64{},
	}
}

func statusError(status int) *errorBody {
	msg := http.StatusText(status)
	switch status {
	case http.StatusRequestEntityTooLarge:
		msg = errTooLarge
	case http.StatusInternalServerError:
		msg = "Internal server error"
	case http.StatusServiceUnavailable:
		msg = "Service unavailable"
	case http.StatusGatewayTimeout:
		msg = "Gateway timeout"
	case http.StatusBadGateway:
		msg = "Bad gateway"
	}
	if msg == "" {
		msg = "Error"
	}
	return &errorBody{Code: status, Error: msg}
}

// reply is a status and its encoded JSON body.
type reply struct {
	status int
	body   []byte
	msg    string // error text for logs (never contains an API key)
}

func jsonReply(status int, v any, msg string) reply {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen with our own types
		b = []byte(`{"code":500,"error":"Internal server error"}`)
		status = http.StatusInternalServerError
	}
	return reply{status: status, body: b, msg: msg}
}

func errorReply(status int, msg string) reply {
	if status == http.StatusBadRequest {
		return jsonReply(status, newBadRequest(msg), msg)
	}
	return jsonReply(status, &errorBody{Code: status, Error: msg}, msg)
}

func okReply(ingested, size int, nowMs int64) reply {
	b := make([]byte, 0, 96)
	b = append(b, `{"code":200,"events_ingested":`...)
	b = strconv.AppendInt(b, int64(ingested), 10)
	b = append(b, `,"payload_size_bytes":`...)
	b = strconv.AppendInt(b, int64(size), 10)
	b = append(b, `,"server_upload_time":`...)
	b = strconv.AppendInt(b, nowMs, 10)
	b = append(b, '}')
	return reply{status: http.StatusOK, body: b}
}

func writeReply(w http.ResponseWriter, r reply) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(r.body)))
	w.WriteHeader(r.status)
	_, _ = w.Write(r.body)
}

// faultReply is the answer to an injected fault, with every field §6 lists
// for its status.
func faultReply(status, threshold int) reply {
	switch status {
	case http.StatusBadRequest:
		return jsonReply(status, newBadRequest("Injected fault"), "injected fault")
	case http.StatusTooManyRequests:
		return jsonReply(status, newThrottle(threshold), "injected fault")
	}
	return jsonReply(status, statusError(status), "injected fault")
}
