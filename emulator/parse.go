package emulator

import (
	"bytes"
	"net/http"
	"unicode/utf8"
)

// Documented 400 error strings (amplitude-api.md §6).
const (
	errInvalidPath     = "Invalid request path"
	errMissingBody     = "Missing request body"
	errInvalidJSON     = "Invalid JSON request body"
	errMissingField    = "Request missing required field"
	errInvalidEvent    = "Invalid event JSON"
	errInvalidKey      = "Invalid API key: "
	errInvalidFields   = "Invalid field values on some events"
	errInvalidIDLength = "Invalid id length for user_id or device_id" // undocumented; from SDK issues
	errSilenced        = "Events silenced for device_id"
	errTooLarge        = "Payload too large"
	errThrottled       = "Too many requests for some devices and users"
	errContentType     = "Invalid request content type"
	errContentEncoding = "Invalid request content encoding"
)

// blockedIDs are user_id/device_id values Amplitude refuses (§4). The
// comparison is case-insensitive: the docs do not say, and a stricter
// emulator catches more client bugs.
var blockedIDs = []string{
	"anonymous", "nil", "none", "null", "n/a", "na", "undefined", "unknown",
	`""`, "00000000-0000-0000-0000-000000000000", "{}", "lmy47d", "0", "-1",
}

// reservedTypes are event types clients must not send (§3).
var reservedTypes = map[string]struct{}{
	"[Amplitude] Start Session":        {},
	"[Amplitude] End Session":          {},
	"[Amplitude] Revenue":              {},
	"[Amplitude] Revenue (Verified)":   {},
	"[Amplitude] Revenue (Unverified)": {},
	"[Amplitude] Merged User":          {},
}

func isBlocked(id []byte) bool {
	if len(id) > 36 {
		return false
	}
	for _, b := range blockedIDs {
		if len(b) == len(id) && bytes.EqualFold(id, []byte(b)) {
			return true
		}
	}
	return false
}

// event is what the server needs from one valid event. The byte slices
// point into the request body or the scanner's memory and are valid until
// the request's scratch memory is reused.
type event struct {
	raw      []byte
	f        [numFields]span // where the fields the server reads are
	device   []byte          // effective device_id after stripping; nil when none
	user     []byte
	insertID []byte    // nil when absent or empty
	dkey     dedupeKey // dedupe key, when insertID != nil
	aggs     [2]int32  // 1 + index in the request's aggregates of the device and the user; 0 when none
}

// eventErrors collects per-event problems, field → indexes.
type eventErrors struct {
	missing, invalid, idLengths map[string][]int
}

func (e *eventErrors) add(m *map[string][]int, field string, i int) {
	if *m == nil {
		*m = make(map[string][]int)
	}
	s := (*m)[field]
	if n := len(s); n > 0 && s[n-1] == i {
		return
	}
	(*m)[field] = append(s, i)
}

func (e *eventErrors) any() bool {
	return e.missing != nil || e.invalid != nil || e.idLengths != nil
}

// parseBody runs steps 3 to 7 of the pipeline on a body that is not blank:
// JSON, size, required fields, API key, the events array and the per-event
// checks. On failure it returns the answer and how many events the request
// carried (0 if unknown). Lookups and type checks follow fastjson's, which
// this package used to parse bodies with.
func parseBody(sc *scanner, body []byte, limit int, apiKeys map[string]struct{}) (apiKey []byte, events []event, rep reply, n int, ok bool) {
	if !sc.scan(body) {
		return nil, nil, errorReply(http.StatusBadRequest, errInvalidJSON), 0, false
	}
	if limit > 0 && len(body) > limit {
		return nil, nil, errorReply(http.StatusRequestEntityTooLarge, errTooLarge), 0, false
	}
	if m := sc.get(nameAPIKey); m != nil && body[m.val.start] == '"' {
		apiKey = sc.text(m.val)
	}
	if len(apiKey) == 0 {
		b := newBadRequest(errMissingField)
		b.MissingField = "api_key"
		return nil, nil, jsonReply(http.StatusBadRequest, b, errMissingField+": api_key"), 0, false
	}
	evs := sc.get(nameEvents)
	if evs == nil || body[evs.val.start] != '[' {
		b := newBadRequest(errMissingField)
		b.MissingField = "events"
		return nil, nil, jsonReply(http.StatusBadRequest, b, errMissingField+": events"), 0, false
	}
	if apiKeys != nil {
		if _, ok := apiKeys[string(apiKey)]; !ok {
			rep := errorReply(http.StatusBadRequest, errInvalidKey+string(apiKey))
			rep.msg = "invalid api key"
			return nil, nil, rep, 0, false
		}
	}
	if evs.n > MaxEventsPerRequest {
		return nil, nil, errorReply(http.StatusRequestEntityTooLarge, errTooLarge), evs.n, false
	}
	if !evs.objects {
		return nil, nil, errorReply(http.StatusBadRequest, errInvalidEvent), evs.n, false
	}
	events = sc.events[evs.from : evs.from+evs.n]
	minLen := sc.minIDLength()
	var errs eventErrors
	for i := range events {
		sc.checkEvent(i, &events[i], minLen, &errs)
	}
	if errs.any() {
		return nil, nil, errs.reply(), len(events), false
	}
	return apiKey, events, reply{}, len(events), true
}

// reply is the 400 listing every per-event problem. When short ids are the
// only problem the error string is the one real servers send for them
// ("Invalid id length for user_id or device_id", seen in public SDK
// issues); otherwise the documented generic one.
func (e *eventErrors) reply() reply {
	msg := errInvalidFields
	if e.invalid == nil && e.missing == nil {
		msg = errInvalidIDLength
	}
	b := newBadRequest(msg)
	if e.invalid != nil {
		b.EventsWithInvalidFields = e.invalid
	}
	if e.missing != nil {
		b.EventsWithMissingFields = e.missing
	}
	if e.idLengths != nil {
		b.EventsWithInvalidIDLengths = e.idLengths
	}
	return jsonReply(http.StatusBadRequest, b, msg)
}

// idField classifies a user_id/device_id value.
type idField struct {
	val     []byte // the id, when a usable string
	short   bool   // present but shorter than min length: an error
	badType bool   // present but not a string
	blocked bool
}

func (s *scanner) readID(v span, minLen int) idField {
	var f idField
	if !v.ok() || s.b[v.start] == 'n' {
		return f
	}
	if s.b[v.start] != '"' {
		f.badType = true
		return f
	}
	b := s.text(v)
	if len(b) == 0 {
		return f
	}
	if utf8.RuneCount(b) < minLen {
		f.short = true
		return f
	}
	f.val = b
	f.blocked = isBlocked(b)
	return f
}

// checkEvent validates event i (an object) and fills ev. Steps follow
// amplitude-api.md §11.5.
func (s *scanner) checkEvent(i int, ev *event, minLen int, errs *eventErrors) {
	// 1. classify the ids.
	u := s.readID(ev.f[fieldUserID], minLen)
	d := s.readID(ev.f[fieldDeviceID], minLen)
	// 2. event_type.
	switch et := ev.f[fieldEventType]; {
	case !et.ok() || s.b[et.start] == 'n':
		errs.add(&errs.missing, "event_type", i)
	case s.b[et.start] != '"':
		errs.add(&errs.invalid, "event_type", i)
	default:
		b := s.text(et)
		if len(b) == 0 {
			errs.add(&errs.missing, "event_type", i)
		} else if _, ok := reservedTypes[string(b)]; ok {
			errs.add(&errs.invalid, "event_type", i)
		}
	}
	// 3. a short id is an error even when the other id is valid (public
	// SDK issues show Amplitude answering 400 events_with_invalid_id_lengths
	// for a short user_id next to a valid device_id); no id at all is a
	// missing user_id.
	if u.short {
		errs.add(&errs.idLengths, "user_id", i)
	}
	if d.short {
		errs.add(&errs.idLengths, "device_id", i)
	}
	if u.val == nil && d.val == nil && !u.badType && !d.badType && !u.short && !d.short {
		errs.add(&errs.missing, "user_id", i)
	}
	// 4. invalid values.
	if u.badType || u.blocked {
		errs.add(&errs.invalid, "user_id", i)
	}
	if d.badType || d.blocked {
		errs.add(&errs.invalid, "device_id", i)
	}
	if tm := ev.f[fieldTime]; tm.ok() && s.b[tm.start] != 'n' {
		if _, ok := s.int64Value(tm); !ok {
			errs.add(&errs.invalid, "time", i)
		}
	}
	var ins []byte
	if v := ev.f[fieldInsertID]; v.ok() && s.b[v.start] != 'n' {
		if s.b[v.start] != '"' {
			errs.add(&errs.invalid, "insert_id", i)
		} else if ins = s.text(v); len(ins) == 0 {
			ins = nil
		}
	}
	ev.user, ev.device, ev.insertID = u.val, d.val, ins
}

// minIDLength reads options.min_id_length as fastjson's
// root.Get("options", "min_id_length").Int() did; anything but a positive
// integer means the default.
func (s *scanner) minIDLength() int {
	m := s.get(nameOptions)
	if m == nil || s.b[m.val.start] != '{' {
		return DefaultMinIDLength
	}
	v := s.objectGet(m.val, "min_id_length")
	if !v.ok() {
		return DefaultMinIDLength
	}
	n, ok := s.int64Value(v)
	if !ok || n <= 0 || int64(int(n)) != n {
		return DefaultMinIDLength
	}
	return int(n)
}
