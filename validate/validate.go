package validate

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/backfillhq/backfill/amplitude"
	"github.com/valyala/fastjson"
)

// Defaults for Options.
const (
	// DefaultMinIDLength is Amplitude's default minimum user_id/device_id length.
	DefaultMinIDLength = amplitude.MinIDLength
	// DefaultMaxStringLength is the longest string value, in runes.
	DefaultMaxStringLength = amplitude.MaxStringLength
	// DefaultMaxDepth is the deepest nesting of objects and arrays inside an event.
	DefaultMaxDepth = 40
	// DefaultMaxKeys is the most keys one object may have.
	DefaultMaxKeys = 1024
	// DefaultMaxFuture is how far after Now an event time may be.
	DefaultMaxFuture = 366 * 24 * time.Hour
	// DefaultMinTime is the earliest accepted event time, in ms since the
	// epoch (2000-01-01T00:00:00Z).
	DefaultMinTime int64 = 946684800000
)

// ErrInvalid is matched by every rejection (errors.Is(err, ErrInvalid)).
var ErrInvalid = errors.New("invalid event")

// Rejection codes, stable for counting and reports.
const (
	CodeInvalidJSON       = "invalid_json"
	CodeMissingEventType  = "missing_event_type"
	CodeReservedEventType = "reserved_event_type"
	CodeMissingID         = "missing_id"
	CodeIDTooLong         = "id_too_long"
	CodeIDTooShort        = "id_too_short"
	CodeMissingTime       = "missing_time"
	CodeInvalidTime       = "invalid_time"
	CodeInvalidField      = "invalid_field"
	CodeTooDeep           = "too_deep"
	CodeTooManyKeys       = "too_many_keys"
)

// Error is a rejected event.
type Error struct {
	Code   string // one of the Code* constants
	Field  string // the offending field, dotted for nested ones
	Reason string // human readable, names the field
}

func (e *Error) Error() string { return e.Reason }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

func reject(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Options tunes a Validator. The zero value means the documented defaults.
type Options struct {
	MinIDLength     int           // default DefaultMinIDLength
	MaxStringLength int           // default DefaultMaxStringLength
	MaxDepth        int           // default DefaultMaxDepth
	MaxKeys         int           // default DefaultMaxKeys
	MaxFuture       time.Duration // default DefaultMaxFuture
	MinTime         int64         // ms since epoch; default DefaultMinTime
	// AllowMissingTime accepts events without time (Amplitude then uses the
	// upload time). Off by default: a backfill event needs its real time.
	AllowMissingTime bool
	// Now is the clock for the future-time bound; default time.Now.
	Now func() time.Time
}

// Validator checks events. It is safe for concurrent use.
type Validator struct {
	opt Options
}

// New returns a Validator; zero Options fields take their defaults.
func New(opt Options) (*Validator, error) {
	if opt.MinIDLength < 0 || opt.MaxStringLength < 0 || opt.MaxDepth < 0 || opt.MaxKeys < 0 || opt.MaxFuture < 0 {
		return nil, errors.New("validate: negative limit")
	}
	if opt.MinIDLength == 0 {
		opt.MinIDLength = DefaultMinIDLength
	}
	if opt.MaxStringLength == 0 {
		opt.MaxStringLength = DefaultMaxStringLength
	}
	if opt.MaxDepth == 0 {
		opt.MaxDepth = DefaultMaxDepth
	}
	if opt.MaxKeys == 0 {
		opt.MaxKeys = DefaultMaxKeys
	}
	if opt.MaxFuture == 0 {
		opt.MaxFuture = DefaultMaxFuture
	}
	if opt.MinTime == 0 {
		opt.MinTime = DefaultMinTime
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Validator{opt: opt}, nil
}

// Options returns the effective options (defaults filled in).
func (v *Validator) Options() Options { return v.opt }

// Result describes a valid event: the keys later stages need, and the
// repairs AppendEvent must apply.
type Result struct {
	EventType string // after truncation
	UserID    string // "" when absent or stripped
	DeviceID  string // "" when absent or stripped
	InsertID  string
	Time      int64 // 0 when absent
	HasTime   bool

	// HasSkipSync reports that $skip_user_properties_sync is present.
	HasSkipSync bool
	// Typed reports that every top-level key is a documented Amplitude
	// field holding a non-null value of its documented type: the event can
	// be sent as it is (apart from the repairs below).
	Typed bool

	StripUserID   bool // user_id is empty or blocked and must be removed
	StripDeviceID bool // same for device_id
	// BlockedIDs counts, of the stripped ids, those on Amplitude's blocked
	// list; the others were too short.
	BlockedIDs int
	Truncated  int // string values longer than MaxStringLength
}

// StrippedIDs returns how many ids the repair removes.
func (r *Result) StrippedIDs() int {
	n := 0
	if r.StripUserID {
		n++
	}
	if r.StripDeviceID {
		n++
	}
	return n
}

// Changed reports whether the event needs any repair.
func (r *Result) Changed() bool {
	return r.StripUserID || r.StripDeviceID || r.Truncated > 0
}

// checker carries the state of one Check call; pooled to avoid garbage.
type checker struct {
	v        *Validator
	res      Result
	fieldErr *Error   // first type/nesting problem
	path     [][]byte // keys from the event down to the current value
	num      []byte   // scratch for number text
	// typedOnly stops the work once the event is known not to be Typed.
	typedOnly bool
}

var checkers = sync.Pool{New: func() any { return new(checker) }}

// numText returns the JSON text of a number value (valid until the next call).
func (c *checker) numText(v *fastjson.Value) []byte {
	c.num = v.MarshalTo(c.num[:0])
	return c.num
}

func (c *checker) setErr(e *Error) {
	if c.fieldErr == nil {
		c.fieldErr = e
	}
}

func (c *checker) pathString(last []byte) string {
	parts := make([]string, 0, len(c.path)+1)
	for _, p := range c.path {
		parts = append(parts, string(p))
	}
	return strings.Join(append(parts, string(last)), ".")
}

// Check validates ev without modifying it. On success the Result lists the
// extracted keys and the repairs to apply; on failure err is an *Error.
func (v *Validator) Check(ev *fastjson.Value) (Result, error) {
	return v.check(ev, false)
}

// CheckTyped is Check for callers that only want events already in
// Amplitude's shape: as soon as a top-level key is undocumented, null or of
// the wrong type it stops and returns a Result with Typed false and a nil
// error. Otherwise it is Check, with Typed true.
func (v *Validator) CheckTyped(ev *fastjson.Value) (Result, error) {
	return v.check(ev, true)
}

func (v *Validator) check(ev *fastjson.Value, typedOnly bool) (Result, error) {
	c := checkers.Get().(*checker)
	c.typedOnly = typedOnly
	res, err := c.check(v, ev)
	if typedOnly && !res.Typed {
		res, err = Result{}, nil
	}
	c.v, c.res, c.fieldErr, c.path = nil, Result{}, nil, c.path[:0]
	checkers.Put(c)
	return res, err
}

func (c *checker) check(v *Validator, ev *fastjson.Value) (Result, error) {
	c.v = v
	if ev == nil || ev.Type() != fastjson.TypeObject {
		return c.res, reject(CodeInvalidJSON, "", "event is not a JSON object")
	}
	o, _ := ev.Object()
	if o.Len() > v.opt.MaxKeys {
		return c.res, reject(CodeTooManyKeys, "", "event has %d keys (max %d)", o.Len(), v.opt.MaxKeys)
	}
	var evType, userID, deviceID, tm *fastjson.Value
	c.res.Typed = true
	o.Visit(func(kb []byte, val *fastjson.Value) {
		if c.typedOnly && !c.res.Typed {
			return
		}
		kind := fieldKinds[string(kb)]
		t := val.Type()
		if kind == KindUnknown || t == fastjson.TypeNull || !c.kindMatches(kind, val) {
			c.res.Typed = false
			if c.typedOnly {
				return
			}
		}
		switch string(kb) {
		case "event_type":
			evType = val
			return
		case "user_id":
			userID = val
			return
		case "device_id":
			deviceID = val
			return
		case "time":
			tm = val
			return
		}
		if kind != KindUnknown && t != fastjson.TypeNull && !c.kindMatches(kind, val) {
			k := string(kb)
			if t == fastjson.TypeNumber && kind == KindFloat && NumberSyntax(c.numText(val)) {
				c.setErr(reject(CodeInvalidField, k, "invalid %s: %s is out of float64 range", k, snippet(val)))
				return
			}
			c.setErr(reject(CodeInvalidField, k, "invalid %s: %s is not %s", k, snippet(val), kind))
			return
		}
		switch string(kb) {
		case "insert_id":
			if t == fastjson.TypeString {
				b, _ := val.StringBytes()
				if overLimit(b, v.opt.MaxStringLength) {
					c.setErr(reject(CodeIDTooLong, "insert_id", "insert_id longer than %d characters", v.opt.MaxStringLength))
					return
				}
				c.res.InsertID = string(b)
			}
			return
		case "$skip_user_properties_sync":
			c.res.HasSkipSync = true
		}
		c.walk(kb, val, 1)
	})

	if c.typedOnly && !c.res.Typed {
		return c.res, nil
	}
	// event_type
	switch {
	case evType == nil || evType.Type() == fastjson.TypeNull:
		return c.res, reject(CodeMissingEventType, "event_type", "missing event_type")
	case evType.Type() != fastjson.TypeString:
		return c.res, reject(CodeMissingEventType, "event_type", "invalid event_type: %s is not a string", snippet(evType))
	}
	et, _ := evType.StringBytes()
	if strings.TrimSpace(string(et)) == "" {
		return c.res, reject(CodeMissingEventType, "event_type", "empty event_type")
	}
	if IsReservedEventType(string(et)) {
		return c.res, reject(CodeReservedEventType, "event_type", "reserved event_type %q", et)
	}
	if s, cut := truncate(string(et), v.opt.MaxStringLength); cut {
		c.res.Truncated++
		c.res.EventType = s
	} else {
		c.res.EventType = s
	}

	// ids
	uDesc, uOK, err := c.id("user_id", userID, &c.res.UserID, &c.res.StripUserID)
	if err != nil {
		return c.res, err
	}
	dDesc, dOK, err := c.id("device_id", deviceID, &c.res.DeviceID, &c.res.StripDeviceID)
	if err != nil {
		return c.res, err
	}
	if !uOK && !dOK {
		if uDesc == "no user_id" && dDesc == "no device_id" {
			return c.res, reject(CodeMissingID, "user_id", "missing user_id and device_id")
		}
		field := "user_id"
		if uDesc == "no user_id" {
			field = "device_id"
		}
		return c.res, reject(CodeMissingID, field, "%s and %s", uDesc, dDesc)
	}

	// time
	if err := c.time(tm); err != nil {
		return c.res, err
	}
	if c.fieldErr != nil {
		return c.res, c.fieldErr
	}
	return c.res, nil
}

// AppendEvent appends ev, encoded as compact JSON with the repairs of res
// applied (stripped ids removed, long strings truncated), to dst.
func (v *Validator) AppendEvent(dst []byte, ev *fastjson.Value, res *Result) ([]byte, error) {
	o, err := ev.Object()
	if err != nil {
		return dst, reject(CodeInvalidJSON, "", "event is not a JSON object")
	}
	limit := 0
	if res.Truncated > 0 {
		limit = v.opt.MaxStringLength
	}
	dst = append(dst, '{')
	first := true
	o.Visit(func(kb []byte, val *fastjson.Value) {
		if err != nil {
			return
		}
		k := string(kb)
		if (res.StripUserID && k == "user_id") || (res.StripDeviceID && k == "device_id") {
			return
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = AppendString(dst, k)
		dst = append(dst, ':')
		dst, err = appendValue(dst, val, limit)
	})
	if err != nil {
		return dst, reject(CodeInvalidField, "", "%v", err)
	}
	return append(dst, '}'), nil
}

// Event validates one raw JSON event. It returns data itself when the event
// needs no repair, or a repaired copy.
func (v *Validator) Event(data []byte) ([]byte, Result, error) {
	if err := fastjson.ValidateBytes(data); err != nil {
		return nil, Result{}, reject(CodeInvalidJSON, "", "invalid JSON: %v", err)
	}
	var p fastjson.Parser
	ev, err := p.ParseBytes(data)
	if err != nil {
		return nil, Result{}, reject(CodeInvalidJSON, "", "invalid JSON: %v", err)
	}
	res, err := v.Check(ev)
	if err != nil {
		return nil, res, err
	}
	if !res.Changed() {
		return data, res, nil
	}
	out, err := v.AppendEvent(nil, ev, &res)
	return out, res, err
}
