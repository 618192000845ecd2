package emulator

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/valyala/fastjson"
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
// point into the parser's memory and are valid until the parser is reused.
type event struct {
	raw      []byte
	device   []byte // effective device_id after stripping; nil when none
	user     []byte
	insertID []byte // nil when absent or empty
	aggs     [2]*agg
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

// idField classifies a user_id/device_id value.
type idField struct {
	val     []byte // the id, when a usable string
	short   bool   // present but shorter than min length: stripped
	badType bool   // present but not a string
	blocked bool
}

func readID(v *fastjson.Value, minLen int) idField {
	var f idField
	if v == nil || v.Type() == fastjson.TypeNull {
		return f
	}
	if v.Type() != fastjson.TypeString {
		f.badType = true
		return f
	}
	b, _ := v.StringBytes()
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
func checkEvent(i int, v *fastjson.Value, minLen int, ev *event, errs *eventErrors) {
	o, _ := v.Object()
	var (
		eventType, userID, deviceID, tm, insertID *fastjson.Value
	)
	o.Visit(func(key []byte, v *fastjson.Value) {
		switch string(key) {
		case "event_type":
			if eventType == nil {
				eventType = v
			}
		case "user_id":
			if userID == nil {
				userID = v
			}
		case "device_id":
			if deviceID == nil {
				deviceID = v
			}
		case "time":
			if tm == nil {
				tm = v
			}
		case "insert_id":
			if insertID == nil {
				insertID = v
			}
		}
	})
	// 1. strip short ids.
	u := readID(userID, minLen)
	d := readID(deviceID, minLen)
	// 2. event_type.
	switch {
	case eventType == nil || eventType.Type() == fastjson.TypeNull:
		errs.add(&errs.missing, "event_type", i)
	case eventType.Type() != fastjson.TypeString:
		errs.add(&errs.invalid, "event_type", i)
	default:
		b, _ := eventType.StringBytes()
		if len(b) == 0 {
			errs.add(&errs.missing, "event_type", i)
		} else if _, ok := reservedTypes[string(b)]; ok {
			errs.add(&errs.invalid, "event_type", i)
		}
	}
	// 3. some id must be left.
	left := u.val != nil || d.val != nil || u.badType || d.badType
	if !left {
		switch {
		case u.short || d.short:
			if u.short {
				errs.add(&errs.idLengths, "user_id", i)
			}
			if d.short {
				errs.add(&errs.idLengths, "device_id", i)
			}
		default:
			errs.add(&errs.missing, "user_id", i)
		}
	}
	// 4. invalid values.
	if u.badType || u.blocked {
		errs.add(&errs.invalid, "user_id", i)
	}
	if d.badType || d.blocked {
		errs.add(&errs.invalid, "device_id", i)
	}
	if tm != nil && tm.Type() != fastjson.TypeNull {
		if _, err := tm.Int64(); err != nil {
			errs.add(&errs.invalid, "time", i)
		}
	}
	var ins []byte
	if insertID != nil && insertID.Type() != fastjson.TypeNull {
		if insertID.Type() != fastjson.TypeString {
			errs.add(&errs.invalid, "insert_id", i)
		} else {
			ins, _ = insertID.StringBytes()
			if len(ins) == 0 {
				ins = nil
			}
		}
	}
	ev.user, ev.device, ev.insertID = u.val, d.val, ins
}

// minIDLength reads options.min_id_length; anything but a positive integer
// means the default.
func minIDLength(root *fastjson.Value) int {
	v := root.Get("options", "min_id_length")
	if v == nil {
		return DefaultMinIDLength
	}
	n, err := v.Int()
	if err != nil || n <= 0 {
		return DefaultMinIDLength
	}
	return n
}

// splitEvents returns the raw bytes of each element of the first top-level
// "events" array of body, exactly as received. body must be valid JSON (it
// is validated before). It returns nil when there is no such array.
func splitEvents(body []byte) [][]byte {
	i := skipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil
	}
	i++
	for {
		i = skipWS(body, i)
		if i >= len(body) || body[i] != '"' {
			return nil
		}
		end := skipString(body, i)
		key := body[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var s string
			if json.Unmarshal(body[i:end], &s) == nil {
				key = []byte(s)
			}
		}
		i = skipWS(body, end)
		i++ // ':'
		i = skipWS(body, i)
		if string(key) == "events" {
			if body[i] != '[' {
				return nil
			}
			return splitArray(body, i)
		}
		i = skipValue(body, i)
		i = skipWS(body, i)
		if i >= len(body) || body[i] != ',' {
			return nil
		}
		i++
	}
}

func splitArray(body []byte, i int) [][]byte {
	var out [][]byte
	i++ // '['
	for {
		i = skipWS(body, i)
		if i >= len(body) || body[i] == ']' {
			return out
		}
		start := i
		i = skipValue(body, i)
		out = append(out, body[start:i:i])
		i = skipWS(body, i)
		if i < len(body) && body[i] == ',' {
			i++
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i]=='"'.
// A plain loop beats bytes.IndexByte on the short strings events are made of.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\n', '\r', '\t':
				return i
			}
			i++
		}
		return i
	}
}
