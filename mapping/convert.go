package mapping

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/backfillhq/backfill/validate"
	"github.com/valyala/fastjson"
)

// Time units accepted by a rule's "time" key.
const (
	unitAuto = "auto" // by magnitude, see timeToMS
	unitS    = "s"
	unitMS   = "ms"
	unitUS   = "us"
	unitNS   = "ns"
	unitISO  = "iso" // strings only
)

var timeUnits = map[string]bool{unitAuto: true, unitS: true, unitMS: true, unitUS: true, unitNS: true, unitISO: true}

// convErr is a conversion failure; the caller adds the field name.
type convErr struct{ msg string }

func (e *convErr) Error() string { return e.msg }

func convFail(format string, args ...any) error { return &convErr{fmt.Sprintf(format, args...)} }

// describe renders a value for error messages.
func describe(v outVal) string {
	switch v.kind {
	case kStr:
		s := v.s
		if len(s) > 40 {
			s = s[:37] + "..."
		}
		return strconv.Quote(s)
	case kSrc:
		if v.src.Type() == fastjson.TypeString {
			s, _ := srcScalar(v.src)
			return describe(strVal(s))
		}
		b, _ := validate.AppendValue(nil, v.src)
		if len(b) > 40 {
			b = append(b[:37], "..."...)
		}
		return string(b)
	case kObj:
		return "an object"
	}
	s, _ := v.scalar()
	return s
}

// kindOf reports the JSON kind of a value: 's'tring, 'n'umber, 'b'ool,
// 'o'bject, 'a'rray, 0 for nothing/null.
func kindOf(v outVal) byte {
	switch v.kind {
	case kStr:
		return 's'
	case kNum:
		return 'n'
	case kBool:
		return 'b'
	case kObj:
		return 'o'
	case kRaw:
		switch v.s[0] {
		case '{':
			return 'o'
		case '[':
			return 'a'
		case '"':
			return 's'
		case 't', 'f':
			return 'b'
		case 'n':
			return 0
		}
		return 'n'
	case kSrc:
		switch v.src.Type() {
		case fastjson.TypeString:
			return 's'
		case fastjson.TypeNumber:
			return 'n'
		case fastjson.TypeTrue, fastjson.TypeFalse:
			return 'b'
		case fastjson.TypeObject:
			return 'o'
		case fastjson.TypeArray:
			return 'a'
		}
	}
	return 0
}

// toString casts scalars to a string (numbers keep their JSON text).
func toString(v outVal) (string, error) {
	switch kindOf(v) {
	case 's', 'n', 'b':
		s, _ := v.scalar()
		if v.kind == kRaw {
			var p fastjson.Parser
			if pv, err := p.Parse(v.s); err == nil {
				s, _ = srcScalar(pv)
			}
		}
		return s, nil
	}
	return "", convFail("%s is not a string", describe(v))
}

// numberText returns the JSON number text of a number or numeric string.
func numberText(v outVal) (string, bool) {
	s, ok := v.scalar()
	if !ok {
		return "", false
	}
	switch kindOf(v) {
	case 'n':
		return s, validate.ValidNumber([]byte(s))
	case 's':
		s = strings.TrimSpace(s)
		if validate.ValidNumber([]byte(s)) {
			return s, true
		}
		// Accept what ParseFloat accepts but JSON does not ("+1", ".5", "1.").
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return "", false
		}
		return strconv.FormatFloat(f, 'g', -1, 64), true
	}
	return "", false
}

// toFloat casts numbers and numeric strings to a JSON number.
func toFloat(v outVal) (outVal, error) {
	if s, ok := numberText(v); ok {
		return numVal(s), nil
	}
	return outVal{}, convFail("%s is not a number", describe(v))
}

// toInt casts numbers and numeric strings with an integral value to an
// integer: 1.7e12 and "1700000000000.0" both give 1700000000000.
func toInt(v outVal) (int64, error) {
	s, ok := numberText(v)
	if !ok {
		return 0, convFail("%s is not an integer", describe(v))
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<63 {
		return 0, convFail("%s is not an integer", describe(v))
	}
	return int64(f), nil
}

// toBool casts booleans and "true"/"false"/"1"/"0" (any case) to a bool.
func toBool(v outVal) (bool, error) {
	s, ok := v.scalar()
	if ok {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true", "1":
			return true, nil
		case "false", "0":
			return false, nil
		}
	}
	return false, convFail("%s is not a boolean", describe(v))
}

// timeToMS converts a timestamp to integer ms since the epoch.
//
// Numbers and numeric strings are read in unit; "auto" picks the unit by
// magnitude: |n| < 1e11 is seconds (1e11 s is the year 5138, while 1e11 ms
// is 1973), < 1e14 milliseconds, < 1e17 microseconds, else nanoseconds.
// Sub-millisecond precision is truncated; fractional milliseconds in unit
// "ms" are an error. Other strings are parsed as ISO-8601 / RFC 3339
// date-times; see parseTimestamp.
func timeToMS(v outVal, unit string) (int64, error) {
	if unit == "" {
		unit = unitMS
	}
	k := kindOf(v)
	if k != 's' && k != 'n' {
		return 0, convFail("%s is not a timestamp", describe(v))
	}
	if num, ok := numberText(v); ok && unit != unitISO {
		return numberToMS(v, num, unit)
	}
	if k == 's' {
		s, _ := v.scalar()
		if ms, ok := parseTimestamp(s); ok {
			return ms, nil
		}
	}
	if unit == unitMS {
		return 0, convFail("%s is not integer milliseconds or an ISO-8601 date-time", describe(v))
	}
	return 0, convFail("%s is not a timestamp", describe(v))
}

func numberToMS(v outVal, num, unit string) (int64, error) {
	n, ierr := strconv.ParseInt(num, 10, 64)
	isInt := ierr == nil
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, convFail("%s is not a timestamp", describe(v))
	}
	if unit == unitAuto {
		switch a := math.Abs(f); {
		case a < 1e11:
			unit = unitS
		case a < 1e14:
			unit = unitMS
		case a < 1e17:
			unit = unitUS
		default:
			unit = unitNS
		}
	}
	var ms float64
	switch unit {
	case unitS:
		if isInt && n < math.MaxInt64/1000 && n > math.MinInt64/1000 {
			return n * 1000, nil
		}
		ms = f * 1000
	case unitMS:
		if isInt {
			return n, nil
		}
		if f != math.Trunc(f) {
			return 0, convFail("%s is not integer milliseconds", describe(v))
		}
		ms = f
	case unitUS:
		if isInt {
			return floorDiv(n, 1000), nil
		}
		ms = f / 1000
	case unitNS:
		if isInt {
			return floorDiv(n, 1000000), nil
		}
		ms = f / 1e6
	}
	ms = math.Floor(ms)
	if math.Abs(ms) >= 1<<62 || math.IsNaN(ms) {
		return 0, convFail("%s is out of range", describe(v))
	}
	return int64(ms), nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && (a < 0) {
		q--
	}
	return q
}

// timestamp layouts tried in order. Layouts without a zone are UTC (the
// Amplitude Export API writes "2024-01-02 03:04:05.678000").
var layouts = []string{
	time.RFC3339Nano, // 2006-01-02T15:04:05.999999999Z07:00, fraction optional
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
}

// parseTimestamp parses an ISO-8601 / RFC 3339 date-time, with "T" or a space
// between date and time, optional fraction, and a zone written Z, +hh:mm,
// +hhmm, +hh or " UTC" (BigQuery); no zone means UTC. Date-only strings are
// refused: they are too coarse to be an event time.
func parseTimestamp(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 16 || s[4] != '-' {
		return 0, false
	}
	if rest, ok := strings.CutSuffix(s, " UTC"); ok {
		s = rest
	}
	if s[len(s)-1] == 'z' {
		s = s[:len(s)-1] + "Z"
	}
	if s[10] == 't' {
		s = s[:10] + "T" + s[11:]
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UnixMilli(), true
		}
	}
	return 0, false
}
