package validate

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// Kind is the JSON type Amplitude expects for a known top-level event field.
type Kind uint8

const (
	// KindUnknown marks a key that is not a documented Amplitude field.
	KindUnknown Kind = iota
	// KindString is a JSON string.
	KindString
	// KindInt is an integer JSON number (time, session_id, event_id, quantity).
	KindInt
	// KindFloat is any JSON number (price, revenue, location_lat/lng).
	KindFloat
	// KindBool is true or false.
	KindBool
	// KindObject is a JSON object (event_properties, groups, plan, ...).
	KindObject
)

// String names the kind as it appears in error messages.
func (k Kind) String() string {
	switch k {
	case KindString:
		return "a string"
	case KindInt:
		return "an integer"
	case KindFloat:
		return "a number"
	case KindBool:
		return "a boolean"
	case KindObject:
		return "an object"
	}
	return "unknown"
}

// fieldList is the table of amplitude-api.md §3, in the canonical order used
// when an event is re-encoded.
var fieldList = []struct {
	name string
	kind Kind
}{
	{"user_id", KindString},
	{"device_id", KindString},
	{"event_type", KindString},
	{"time", KindInt},
	{"insert_id", KindString},
	{"session_id", KindInt},
	{"event_id", KindInt},
	{"app_version", KindString},
	{"version_name", KindString},
	{"platform", KindString},
	{"os_name", KindString},
	{"os_version", KindString},
	{"device_brand", KindString},
	{"device_manufacturer", KindString},
	{"device_model", KindString},
	{"carrier", KindString},
	{"country", KindString},
	{"region", KindString},
	{"city", KindString},
	{"dma", KindString},
	{"language", KindString},
	{"location_lat", KindFloat},
	{"location_lng", KindFloat},
	{"ip", KindString},
	{"user_agent", KindString},
	{"idfa", KindString},
	{"idfv", KindString},
	{"adid", KindString},
	{"android_id", KindString},
	{"android_app_set_id", KindString},
	{"price", KindFloat},
	{"quantity", KindInt},
	{"revenue", KindFloat},
	{"productId", KindString},
	{"revenueType", KindString},
	{"currency", KindString},
	{"library", KindString},
	{"partner_id", KindString},
	{"plan", KindObject},
	{"ingestion_metadata", KindObject},
	{"$skip_user_properties_sync", KindBool},
	{"event_properties", KindObject},
	{"user_properties", KindObject},
	{"groups", KindObject},
	{"group_properties", KindObject},
}

var fieldKinds = func() map[string]Kind {
	m := make(map[string]Kind, len(fieldList))
	for _, f := range fieldList {
		m[f.name] = f.kind
	}
	return m
}()

// FieldKind returns the expected kind of the top-level event field name, or
// KindUnknown when name is not a documented Amplitude event field.
func FieldKind(name string) Kind { return fieldKinds[name] }

// Fields returns the documented top-level Amplitude event fields in the
// canonical order used when events are re-encoded.
func Fields() []string {
	out := make([]string, len(fieldList))
	for i, f := range fieldList {
		out[i] = f.name
	}
	return out
}

// reserved event types must not be sent (amplitude-api.md §3).
var reserved = map[string]bool{
	"[Amplitude] Start Session":        true,
	"[Amplitude] End Session":          true,
	"[Amplitude] Revenue":              true,
	"[Amplitude] Revenue (Verified)":   true,
	"[Amplitude] Revenue (Unverified)": true,
	"[Amplitude] Merged User":          true,
}

// IsReservedEventType reports whether t is an event type Amplitude reserves.
func IsReservedEventType(t string) bool { return reserved[t] }

// blocked id values (amplitude-api.md §4), lower-case.
var blocked = map[string]bool{
	"anonymous": true, "nil": true, "none": true, "null": true, "n/a": true,
	"na": true, "undefined": true, "unknown": true, `""`: true,
	"00000000-0000-0000-0000-000000000000": true, "{}": true,
	"lmy47d": true, "0": true, "-1": true,
}

// IsBlockedID reports whether id is on Amplitude's blocked id list. The
// comparison ignores case and surrounding spaces.
func IsBlockedID(id string) bool {
	// The usual id is ASCII and not blocked: answer without allocating.
	t := strings.Trim(id, " \t\n\v\f\r")
	for i := 0; i < len(t); i++ {
		if t[i] >= 0x80 {
			return blocked[strings.ToLower(strings.TrimSpace(id))]
		}
	}
	// ASCII: lowering keeps the length.
	if len(t) == 0 || len(t) > maxBlockedLen || !blockedLen[len(t)] || !blockedFirst[t[0]] {
		return false
	}
	var low [maxBlockedLen]byte
	for i := 0; i < len(t); i++ {
		c := t[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		low[i] = c
	}
	return blocked[string(low[:len(t)])]
}

// blockedLen and blockedFirst are the lengths and first bytes (either
// case) of the blocked ids: most ids are ruled out without hashing them.
var blockedLen, blockedFirst = func() (l [maxBlockedLen + 1]bool, f [256]bool) {
	for id := range blocked {
		l[len(id)] = true
		f[id[0]] = true
		f[strings.ToUpper(id[:1])[0]] = true
	}
	return l, f
}()

// maxBlockedLen is the length of the longest blocked id.
const maxBlockedLen = len("00000000-0000-0000-0000-000000000000")

// id checks one id field. desc describes why it is unusable ("" when ok).
func (c *checker) id(name string, val *fastjson.Value, out *string, strip *bool) (desc string, ok bool, err error) {
	if val == nil || val.Type() == fastjson.TypeNull {
		return "no " + name, false, nil
	}
	if val.Type() != fastjson.TypeString {
		return "", false, reject(CodeInvalidField, name, "invalid %s: %s is not a string", name, snippet(val))
	}
	b, _ := val.StringBytes()
	if overLimit(b, c.v.opt.MaxStringLength) {
		return "", false, reject(CodeIDTooLong, name, "%s longer than %d characters", name, c.v.opt.MaxStringLength)
	}
	s := string(b)
	n := utf8.RuneCountInString(s)
	if n == 0 {
		*strip = true
		return "empty " + name, false, nil
	}
	if IsBlockedID(s) {
		*strip = true
		c.res.BlockedIDs++
		return fmt.Sprintf("%s %q is blocked", name, s), false, nil
	}
	if n < c.v.opt.MinIDLength {
		// Amplitude answers a short id with 400
		// events_with_invalid_id_lengths even when the other id is valid
		// (see the emulator's doc), so it is not stripped: the event would
		// lose its user or device without a trace.
		return "", false, reject(CodeIDTooShort, name, "%s %q is shorter than the minimum id length (%d < %d); Amplitude rejects it: lower --min-id-length to send it",
			name, s, n, c.v.opt.MinIDLength)
	}
	*out = s
	return "", true, nil
}

func (c *checker) time(tm *fastjson.Value) error {
	opt := &c.v.opt
	if tm == nil || tm.Type() == fastjson.TypeNull {
		if opt.AllowMissingTime {
			return nil
		}
		return reject(CodeMissingTime, "time", "missing time")
	}
	if tm.Type() != fastjson.TypeNumber {
		return reject(CodeInvalidTime, "time", "invalid time: %s is not integer milliseconds", snippet(tm))
	}
	raw := c.numText(tm)
	if !IsInteger(raw) {
		return reject(CodeInvalidTime, "time", "invalid time: %s is not integer milliseconds", raw)
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return reject(CodeInvalidTime, "time", "invalid time: %s is out of range", raw)
	}
	if ms < 0 {
		return reject(CodeInvalidTime, "time", "invalid time: %d is negative", ms)
	}
	if ms < opt.MinTime {
		return reject(CodeInvalidTime, "time", "invalid time: %d is before %s (seconds instead of milliseconds?)",
			ms, time.UnixMilli(opt.MinTime).UTC().Format(time.RFC3339))
	}
	if limit := opt.Now().Add(opt.MaxFuture).UnixMilli(); ms > limit {
		return reject(CodeInvalidTime, "time", "invalid time: %d is more than %s in the future (microseconds instead of milliseconds?)",
			ms, fmtDuration(opt.MaxFuture))
	}
	c.res.Time, c.res.HasTime = ms, true
	return nil
}

func fmtDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + " days"
	}
	return d.String()
}

// walk checks nested values: depth, keys per object, string length, and
// number syntax (fastjson's parser accepts "1.2.3" and "NaN").
func (c *checker) walk(key []byte, val *fastjson.Value, depth int) {
	if c.fieldErr != nil {
		return
	}
	switch val.Type() {
	case fastjson.TypeString:
		b, _ := val.StringBytes()
		if overLimit(b, c.v.opt.MaxStringLength) {
			c.res.Truncated++
		}
	case fastjson.TypeNumber:
		if raw := c.numText(val); !ValidNumber(raw) {
			p := c.pathString(key)
			if NumberSyntax(raw) {
				c.setErr(reject(CodeInvalidField, p, "invalid %s: %s is out of float64 range", p, raw))
			} else {
				c.setErr(reject(CodeInvalidField, p, "invalid %s: %q is not a JSON number", p, raw))
			}
		}
	case fastjson.TypeObject:
		if depth > c.v.opt.MaxDepth {
			p := c.pathString(key)
			c.setErr(reject(CodeTooDeep, p, "%s is nested deeper than %d levels", p, c.v.opt.MaxDepth))
			return
		}
		o, _ := val.Object()
		if o.Len() > c.v.opt.MaxKeys {
			p := c.pathString(key)
			c.setErr(reject(CodeTooManyKeys, p, "%s has %d keys (max %d)", p, o.Len(), c.v.opt.MaxKeys))
			return
		}
		c.path = append(c.path, key)
		o.Visit(func(k []byte, vv *fastjson.Value) { c.walk(k, vv, depth+1) })
		c.path = c.path[:len(c.path)-1]
	case fastjson.TypeArray:
		if depth > c.v.opt.MaxDepth {
			p := c.pathString(key)
			c.setErr(reject(CodeTooDeep, p, "%s is nested deeper than %d levels", p, c.v.opt.MaxDepth))
			return
		}
		a, _ := val.Array()
		c.path = append(c.path, key)
		var ib [20]byte
		for i, vv := range a {
			c.walk(strconv.AppendInt(ib[:0], int64(i), 10), vv, depth+1)
		}
		c.path = c.path[:len(c.path)-1]
	}
}

func (c *checker) kindMatches(k Kind, v *fastjson.Value) bool {
	switch k {
	case KindString:
		return v.Type() == fastjson.TypeString
	case KindInt:
		if v.Type() != fastjson.TypeNumber {
			return false
		}
		return IsInteger(c.numText(v))
	case KindFloat:
		return v.Type() == fastjson.TypeNumber && ValidNumber(c.numText(v))
	case KindBool:
		t := v.Type()
		return t == fastjson.TypeTrue || t == fastjson.TypeFalse
	case KindObject:
		return v.Type() == fastjson.TypeObject
	}
	return true
}

// snippet renders v for an error message, shortened to 40 bytes.
func snippet(v *fastjson.Value) string {
	var b []byte
	if v.Type() == fastjson.TypeString {
		s, _ := v.StringBytes()
		if len(s) > 40 {
			s = append(s[:37:37], "..."...)
		}
		return strconv.Quote(string(s))
	}
	b, _ = AppendValue(b, v)
	if len(b) > 40 {
		b = append(b[:37], "..."...)
	}
	return string(b)
}
