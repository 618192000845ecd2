package validate

import (
	"bytes"
	"math"
	"strconv"
	"unicode/utf8"
)

// Scan is the fast path of CheckTyped for records already in Amplitude's
// shape. In one pass over data, without building a tree, it checks that data
// is exactly one strictly valid JSON object (RFC 8259, valid UTF-8, no
// surrounding whitespace) whose top-level keys are documented fields, each
// present once and holding a non-null value of its documented kind, and that
// the event passes every rule of Check with no repair to apply. Then ok is
// true and res is the Result CheckTyped returns for it (Typed true).
//
// Scan is conservative: ok is false whenever it is not sure, for instance
// for invalid JSON, an undocumented or repeated key, an escape sequence in
// a key or in a string it extracts (ids, event_type, insert_id), a string
// longer than MaxStringLength bytes, a non-ASCII id, an id to strip, or an
// event Check rejects. The caller then parses the record and calls Check,
// which decides and explains; Scan never rejects anything itself.
//
// Scan costs about one JSON parse; the slow path costs a strict validation,
// a parse and a walk of the parsed tree.
func (v *Validator) Scan(data []byte) (res Result, ok bool) {
	n := len(data)
	if n < 2 || data[0] != '{' || data[n-1] != '}' {
		return res, false
	}
	s := scanner{b: data, opt: &v.opt}
	var (
		seen                          uint64 // bit i: fieldList[i] was seen
		evType, userID, deviceID, ins []byte
		tm                            []byte
		keys                          int
	)
	i := s.ws(1)
	if i < n && data[i] == '}' {
		return res, false // no event_type: rejected
	}
	for {
		// key
		if i >= n || data[i] != '"' {
			return res, false
		}
		start := i + 1
		i = start
		for i < n && data[i] != '"' {
			if c := data[i]; c == '\\' || c < 0x20 || c >= 0x80 {
				return res, false // documented keys are plain ASCII
			}
			i++
		}
		if i >= n {
			return res, false
		}
		f := fieldIndex(data[start:i])
		if f < 0 || seen&(1<<f) != 0 {
			return res, false
		}
		seen |= 1 << f
		if keys++; keys > v.opt.MaxKeys {
			return res, false
		}
		i = s.ws(i + 1)
		if i >= n || data[i] != ':' {
			return res, false
		}
		i = s.ws(i + 1)
		if i >= n {
			return res, false
		}
		// value, of the field's kind
		switch fieldList[f].kind {
		case KindString:
			if data[i] != '"' {
				return res, false
			}
			end, esc := s.str(i + 1)
			if end < 0 {
				return res, false
			}
			val := data[i+1 : end-1]
			switch f {
			case fUserID, fDeviceID, fEventType, fInsertID:
				if esc {
					return res, false
				}
				switch f {
				case fUserID:
					userID = val
				case fDeviceID:
					deviceID = val
				case fEventType:
					evType = val
				default:
					ins = val
				}
			}
			i = end
		case KindInt, KindFloat:
			end := s.num(i)
			if end < 0 {
				return res, false
			}
			if fieldList[f].kind == KindInt && !IsInteger(data[i:end]) {
				return res, false
			}
			if f == fTime {
				tm = data[i:end]
			}
			i = end
		case KindBool:
			switch {
			case bytes.HasPrefix(data[i:], litTrue):
				i += len(litTrue)
			case bytes.HasPrefix(data[i:], litFalse):
				i += len(litFalse)
			default:
				return res, false
			}
			if f == fSkipSync {
				res.HasSkipSync = true
			}
		case KindObject:
			if data[i] != '{' {
				return res, false
			}
			if i = s.value(i, 1); i < 0 {
				return res, false
			}
		default:
			return res, false
		}
		var more bool
		if i, more = s.next(i, '}'); more {
			continue
		}
		if i != n {
			return res, false // invalid, or text after the object
		}
		break
	}

	// The rules of Check, for an event that needs no repair.
	if evType == nil || len(bytes.TrimSpace(evType)) == 0 || IsReservedEventType(string(evType)) {
		return res, false
	}
	uid, ok := v.scanID(userID)
	if !ok {
		return res, false
	}
	did, ok := v.scanID(deviceID)
	if !ok || uid == "" && did == "" {
		return res, false
	}
	if tm == nil {
		if !v.opt.AllowMissingTime {
			return res, false
		}
	} else {
		ms, err := strconv.ParseInt(string(tm), 10, 64)
		if err != nil || ms < v.opt.MinTime || ms > v.opt.Now().Add(v.opt.MaxFuture).UnixMilli() {
			return res, false
		}
		res.Time, res.HasTime = ms, true
	}
	res.EventType, res.UserID, res.DeviceID = string(evType), uid, did
	if ins != nil {
		res.InsertID = string(ins)
	}
	res.Typed = true
	return res, true
}

// scanID checks an id without escapes and returns it ("" when absent); ok
// is false when Scan must leave the event to Check (a non-ASCII id, or an id
// that must be stripped).
func (v *Validator) scanID(id []byte) (s string, ok bool) {
	if id == nil {
		return "", true
	}
	for _, c := range id {
		if c >= 0x80 {
			return "", false
		}
	}
	if len(id) < v.opt.MinIDLength {
		return "", false
	}
	s = string(id)
	return s, !IsBlockedID(s)
}

var (
	litTrue  = []byte("true")
	litFalse = []byte("false")
	litNull  = []byte("null")
)

// Indexes into fieldList of the fields Scan extracts.
var (
	fUserID    = mustField("user_id")
	fDeviceID  = mustField("device_id")
	fEventType = mustField("event_type")
	fInsertID  = mustField("insert_id")
	fTime      = mustField("time")
	fSkipSync  = mustField("$skip_user_properties_sync")
)

func mustField(name string) int {
	f := fieldIndex([]byte(name))
	if f < 0 {
		panic("validate: no field " + name)
	}
	return f
}

// fieldTable maps a hash of a key (length, first and last byte) to the
// fieldList indexes with that hash: a map lookup per key was a real share
// of the fast path.
var fieldTable = func() (t [256][]int8) {
	if len(fieldList) > 64 {
		panic("validate: Scan tracks at most 64 fields")
	}
	for i, f := range fieldList {
		h := fieldHash([]byte(f.name))
		t[h] = append(t[h], int8(i))
	}
	return t
}()

func fieldHash(k []byte) uint8 {
	if len(k) == 0 {
		return 0
	}
	return uint8(len(k)*7) ^ k[0] ^ k[len(k)-1]<<2
}

// fieldIndex returns the index in fieldList of the field named k, or -1.
func fieldIndex(k []byte) int {
	for _, i := range fieldTable[fieldHash(k)] {
		if fieldList[i].name == string(k) {
			return int(i)
		}
	}
	return -1
}

// scanner walks one JSON text. Its methods return the index after what they
// scanned, or -1 when the text is not valid or not acceptable as it is.
type scanner struct {
	b   []byte
	opt *Options
}

// ws skips JSON whitespace from i.
func (s *scanner) ws(i int) int {
	for i < len(s.b) {
		switch s.b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// plain marks the bytes a string holds as they are: printable ASCII other
// than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str scans a string whose opening quote is at i-1. It returns the index
// after the closing quote and whether the string holds escapes; end is -1
// when the string is invalid or longer than MaxStringLength bytes (it may
// then need truncating, which Check decides).
func (s *scanner) str(i int) (end int, esc bool) {
	b := s.b
	start := i
	for i < len(b) {
		c := b[i]
		if plain[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			if i-start > s.opt.MaxStringLength {
				return -1, esc
			}
			return i + 1, esc
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return -1, esc
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return -1, esc
				}
				i += 6
			default:
				return -1, esc
			}
		case c < 0x20:
			return -1, esc
		default: // >= 0x80
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return -1, esc
			}
			i += size
		}
	}
	return -1, esc
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// num scans a number starting at i, as RFC 8259 defines it, that is also
// within float64's range: 1e400 is valid JSON, but no JSON decoder of the
// SDKs or of Amplitude can hold it (Go's returns an error, others +Inf).
func (s *scanner) num(i int) int {
	start := i
	end, exp := s.numSyntax(i)
	// Only a number with an exponent or over 308 digits can overflow.
	if end > 0 && (exp || end-start > 308) && !inRange(s.b[start:end]) {
		return -1
	}
	return end
}

// inRange reports whether the number b does not overflow float64 (an
// underflow, 1e-400, rounds to 0 and is kept).
func inRange(b []byte) bool {
	f, err := strconv.ParseFloat(string(b), 64)
	return err == nil || !math.IsInf(f, 0)
}

// numSyntax scans a number starting at i by RFC 8259's grammar alone and
// reports whether it has an exponent.
func (s *scanner) numSyntax(i int) (end int, exp bool) {
	b := s.b
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1, false
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return -1, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return -1, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		exp = true
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return -1, false
		}
	}
	return i, exp
}

// value scans any value starting at i (not whitespace), nested depth levels
// below the event: objects and arrays deeper than MaxDepth or objects with
// more than MaxKeys keys are left to Check, as are long strings.
func (s *scanner) value(i, depth int) int {
	b := s.b
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		end, _ := s.str(i + 1)
		return end
	case c == '{':
		if depth > s.opt.MaxDepth {
			return -1
		}
		i = s.ws(i + 1)
		if i < len(b) && b[i] == '}' {
			return i + 1
		}
		for keys := 1; ; keys++ {
			if keys > s.opt.MaxKeys || i >= len(b) || b[i] != '"' {
				return -1
			}
			if i, _ = s.str(i + 1); i < 0 {
				return -1
			}
			if i = s.ws(i); i >= len(b) || b[i] != ':' {
				return -1
			}
			if i = s.value(s.ws(i+1), depth+1); i < 0 {
				return -1
			}
			var more bool
			if i, more = s.next(i, '}'); !more {
				return i
			}
		}
	case c == '[':
		if depth > s.opt.MaxDepth {
			return -1
		}
		i = s.ws(i + 1)
		if i < len(b) && b[i] == ']' {
			return i + 1
		}
		for {
			if i = s.value(i, depth+1); i < 0 {
				return -1
			}
			var more bool
			if i, more = s.next(i, ']'); !more {
				return i
			}
		}
	case c == '-' || c >= '0' && c <= '9':
		return s.num(i)
	case c == 't':
		return s.lit(i, litTrue)
	case c == 'f':
		return s.lit(i, litFalse)
	case c == 'n':
		return s.lit(i, litNull)
	}
	return -1
}

// next follows a member of an object or array that ends at i: it returns
// the start of the next member and true after a ',', the index after the
// closing byte and false at the end, or -1 and false.
func (s *scanner) next(i int, closing byte) (int, bool) {
	i = s.ws(i)
	switch {
	case i >= len(s.b):
		return -1, false
	case s.b[i] == ',':
		return s.ws(i + 1), true
	case s.b[i] == closing:
		return i + 1, false
	}
	return -1, false
}

func (s *scanner) lit(i int, l []byte) int {
	if bytes.HasPrefix(s.b[i:], l) {
		return i + len(l)
	}
	return -1
}
