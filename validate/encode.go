package validate

import (
	"fmt"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/backfillhq/backfill/internal/jsonstr"
)

// AppendString appends s to dst as a JSON string. Unlike fastjson's own
// encoder it always produces valid JSON: control characters become \u00XX
// escapes and invalid UTF-8 bytes become U+FFFD.
func AppendString(dst []byte, s string) []byte {
	dst, _ = jsonstr.Append(dst, s)
	return dst
}

// AppendValue appends v to dst as compact, valid JSON. It fails on a number
// that is not valid JSON (fastjson's parser accepts "1.2.3" or "NaN").
func AppendValue(dst []byte, v *fastjson.Value) ([]byte, error) {
	return appendValue(dst, v, 0)
}

// appendValue encodes v; strings longer than limit runes are truncated when
// limit > 0.
func appendValue(dst []byte, v *fastjson.Value, limit int) ([]byte, error) {
	var err error
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		dst = append(dst, '{')
		first := true
		o.Visit(func(k []byte, vv *fastjson.Value) {
			if err != nil {
				return
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = AppendString(dst, string(k))
			dst = append(dst, ':')
			dst, err = appendValue(dst, vv, limit)
		})
		return append(dst, '}'), err
	case fastjson.TypeArray:
		a, _ := v.Array()
		dst = append(dst, '[')
		for i, vv := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendValue(dst, vv, limit); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		s := string(b)
		if limit > 0 {
			s, _ = truncate(s, limit)
		}
		return AppendString(dst, s), nil
	case fastjson.TypeNumber:
		n := len(dst)
		dst = v.MarshalTo(dst)
		if !ValidNumber(dst[n:]) {
			return dst, fmt.Errorf("invalid number %q", dst[n:])
		}
		return dst, nil
	default: // true, false, null
		return v.MarshalTo(dst), nil
	}
}

// truncate cuts s to at most limit runes and reports whether it did.
func truncate(s string, limit int) (string, bool) {
	if len(s) <= limit {
		return s, false
	}
	n := 0
	for i := range s {
		if n == limit {
			return s[:i], true
		}
		n++
	}
	return s, false
}

// runeLen returns the number of runes of s without allocating; strings of at
// most limit bytes are never counted.
func overLimit(s []byte, limit int) bool {
	return len(s) > limit && utf8.RuneCount(s) > limit
}

// ValidNumber reports whether b is a number as RFC 8259 defines it and
// within float64's range (1e400 is not: no decoder can hold it).
func ValidNumber(b []byte) bool {
	s := scanner{b: b}
	return s.num(0) == len(b)
}

// NumberSyntax reports whether b is a number by RFC 8259's grammar alone,
// whatever its magnitude.
func NumberSyntax(b []byte) bool {
	s := scanner{b: b}
	end, _ := s.numSyntax(0)
	return end == len(b)
}

// IsInteger reports whether b is a JSON number written as an integer
// (no fraction, no exponent).
func IsInteger(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) || (b[i] == '0' && len(b) > i+1) {
		return false
	}
	for ; i < len(b); i++ {
		if b[i] < '0' || b[i] > '9' {
			return false
		}
	}
	return true
}
