package emulator

import (
	"bytes"
	"strconv"

	"github.com/valyala/fastjson"
)

// scanner reads a request body in one pass without building a tree. It
// accepts exactly the bodies that fastjson.ValidateBytes followed by
// fastjson's Parser accept (the parser adds a nesting limit of
// fastjson.MaxDepth values), and records where the values the server reads
// are: the top-level "api_key", "events" and "options", and in each element
// of "events" that is an object, the first "event_type", "user_id",
// "device_id", "time" and "insert_id". Everything else is only validated.
//
// Keys and strings with escapes, rare in practice, are unescaped by fastjson
// itself so that they compare exactly as the fastjson-based pipeline did.
type scanner struct {
	b       []byte
	members []member // top-level members the server may read, in body order
	events  []event  // elements of the events arrays in members
	// unescaped mirrors fastjson's Object.keysUnescaped for the top-level
	// object: once a lookup found no key equal to its name as received,
	// later lookups compare unescaped keys only.
	unescaped bool
	arena     []byte // unescaped strings
	p         fastjson.Parser
}

// span is a value's position: s.b[start:end]. end == 0 means absent.
type span struct{ start, end int }

func (v span) ok() bool { return v.end > 0 }

// Top-level names the server reads.
const (
	nameAPIKey = iota
	nameEvents
	nameOptions
)

// Event fields the server reads, indexes of event.f.
const (
	fieldEventType = iota
	fieldUserID
	fieldDeviceID
	fieldTime
	fieldInsertID
	numFields
)

func topName(k []byte) int {
	switch string(k) {
	case "api_key":
		return nameAPIKey
	case "events":
		return nameEvents
	case "options":
		return nameOptions
	}
	return -1
}

func eventField(k []byte) int {
	switch string(k) {
	case "event_type":
		return fieldEventType
	case "user_id":
		return fieldUserID
	case "device_id":
		return fieldDeviceID
	case "time":
		return fieldTime
	case "insert_id":
		return fieldInsertID
	}
	return -1
}

// member is a top-level member whose key is one the server reads. Only the
// first member of each name and the first whose key, as received, equals
// the name are kept: those are the only ones fastjson's Object.Get returns.
type member struct {
	name    int
	escaped bool // the key has escapes
	val     span
	// For an array: its length, whether every element is an object, and,
	// when n <= MaxEventsPerRequest, its elements in scanner.events[from:].
	n, from int
	objects bool
}

func (s *scanner) reset(b []byte) {
	s.b = b
	s.members = s.members[:0]
	clear(s.events) // drop references to the previous body
	s.events = s.events[:0]
	s.unescaped = false
	s.arena = s.arena[:0]
}

// scan validates the body and records the members; false means invalid
// JSON, or JSON whose root is not an object.
func (s *scanner) scan(b []byte) bool {
	s.reset(b)
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipWS(b, i+1)
	if i >= len(b) {
		return false
	}
	if b[i] == '}' {
		return skipWS(b, i+1) == len(b)
	}
	var firstRaw, firstAny [3]bool
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		ks := i
		var esc, ok bool
		if i, esc, ok = scanString(b, i); !ok {
			return false
		}
		key := s.unescapeKey(b[ks:i], esc)
		if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
			return false
		}
		vs := skipWS(b, i+1)
		name := topName(key)
		keep := name >= 0 && (!firstAny[name] || !esc && !firstRaw[name])
		if keep {
			firstAny[name] = true
			firstRaw[name] = firstRaw[name] || !esc
			m := member{name: name, escaped: esc}
			if name == nameEvents && vs < len(b) && b[vs] == '[' {
				i, ok = s.eventsArray(vs, &m)
			} else {
				i, ok = s.value(vs, 2)
			}
			m.val = span{vs, i}
			s.members = append(s.members, m)
		} else {
			i, ok = s.value(vs, 2)
		}
		if !ok {
			return false
		}
		var more bool
		if i, more, ok = next(b, i, '}'); !more {
			return ok && skipWS(b, i) == len(b)
		}
	}
}

// get returns the top-level member fastjson's Object.Get(name) returns:
// the first key equal to name as received, unless an earlier lookup had to
// unescape keys; then the first key equal to name once unescaped.
func (s *scanner) get(name int) *member {
	if !s.unescaped {
		for i := range s.members {
			if m := &s.members[i]; m.name == name && !m.escaped {
				return m
			}
		}
		s.unescaped = true
	}
	for i := range s.members {
		if m := &s.members[i]; m.name == name {
			return m
		}
	}
	return nil
}

// eventsArray validates the array at b[i] == '[' (depth 2) and fills m with
// its elements.
func (s *scanner) eventsArray(i int, m *member) (int, bool) {
	b := s.b
	m.from, m.objects = len(s.events), true
	collect := true
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, true
	}
	for {
		var ok bool
		start := i
		m.n++
		if m.n > MaxEventsPerRequest && collect {
			collect = false // only the count matters now (413)
			clear(s.events[m.from:])
			s.events = s.events[:m.from]
		}
		switch {
		case i < len(b) && b[i] == '{' && collect:
			s.events = append(s.events, event{})
			ev := &s.events[len(s.events)-1]
			i, ok = s.object(i, 3, ev)
			ev.raw = b[start:i:i]
		default:
			m.objects = m.objects && i < len(b) && b[i] == '{'
			i, ok = s.value(i, 3)
		}
		if !ok {
			return i, false
		}
		var more bool
		if i, more, ok = next(b, i, ']'); !more {
			return i, ok
		}
	}
}

// next follows an object or array member that ends at b[i]: it returns the
// start of the next member after a ',' (more), the index after closing
// (ok, not more), or the index of the offending byte (not ok).
func next(b []byte, i int, closing byte) (j int, more, ok bool) {
	if i = skipWS(b, i); i >= len(b) {
		return i, false, false
	}
	switch b[i] {
	case ',':
		return skipWS(b, i+1), true, true
	case closing:
		return i + 1, false, true
	}
	return i, false, false
}

// value validates the value at b[i], at nesting depth d (the root is 1),
// and returns the index just past it.
func (s *scanner) value(i, d int) (int, bool) {
	b := s.b
	if i >= len(b) || d > fastjson.MaxDepth {
		return i, false
	}
	switch b[i] {
	case '{':
		return s.object(i, d, nil)
	case '[':
		return s.array(i, d)
	case '"':
		end, _, ok := scanString(b, i)
		return end, ok
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	}
	return scanNumber(b, i)
}

// object validates the object at b[i] == '{' at depth d. When ev is not
// nil, the first value of each event field is recorded in it.
func (s *scanner) object(i, d int, ev *event) (int, bool) {
	b := s.b
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, false
		}
		ks := i
		var esc, ok bool
		if i, esc, ok = scanString(b, i); !ok {
			return i, false
		}
		ke := i
		if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
			return i, false
		}
		vs := skipWS(b, i+1)
		if i, ok = s.value(vs, d+1); !ok {
			return i, false
		}
		if ev != nil {
			if f := eventField(s.unescapeKey(b[ks:ke], esc)); f >= 0 && !ev.f[f].ok() {
				ev.f[f] = span{vs, i}
			}
		}
		var more bool
		if i, more, ok = next(b, i, '}'); !more {
			return i, ok
		}
	}
}

func (s *scanner) array(i, d int) (int, bool) {
	b := s.b
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, true
	}
	for {
		var ok bool
		if i, ok = s.value(i, d+1); !ok {
			return i, false
		}
		var more bool
		if i, more, ok = next(b, i, ']'); !more {
			return i, ok
		}
	}
}

// unescapeKey returns the key token tok ("...") as fastjson compares it.
// The result is valid until the next unescape.
func (s *scanner) unescapeKey(tok []byte, esc bool) []byte {
	if !esc {
		return tok[1 : len(tok)-1]
	}
	v, err := s.p.ParseBytes(tok)
	if err != nil { // cannot happen: tok was validated
		return nil
	}
	k, _ := v.StringBytes()
	return k
}

// text returns the string value at v unescaped, as fastjson's StringBytes
// does. v must be a string.
func (s *scanner) text(v span) []byte {
	raw := s.b[v.start+1 : v.end-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[:len(raw):len(raw)]
	}
	t := s.unescapeKey(s.b[v.start:v.end], true)
	start := len(s.arena)
	s.arena = append(s.arena, t...)
	return s.arena[start:len(s.arena):len(s.arena)]
}

// objectGet is fastjson's Object.Get(name) on the object at v, for a
// freshly parsed object: the first key equal to name as received, else the
// first equal once unescaped. v must be a valid object at depth 2.
func (s *scanner) objectGet(v span, name string) span {
	b := s.b
	var unesc span
	for i := skipWS(b, v.start+1); b[i] == '"'; {
		ks := i
		ke, esc, _ := scanString(b, i)
		vs := skipWS(b, skipWS(b, ke)+1) // past ':'
		ve, _ := s.value(vs, 3)
		switch {
		case !esc && string(b[ks+1:ke-1]) == name:
			return span{vs, ve}
		case esc && !unesc.ok() && string(s.unescapeKey(b[ks:ke], true)) == name:
			unesc = span{vs, ve}
		}
		if i = skipWS(b, ve); b[i] != ',' {
			break
		}
		i = skipWS(b, i+1)
	}
	return unesc
}

// int64Value parses the number at v as fastjson's Value.Int64 does: an
// integer that fits in an int64, without fraction or exponent.
func (s *scanner) int64Value(v span) (int64, bool) {
	tok := s.b[v.start:v.end]
	digits := tok
	if len(tok) > 0 && tok[0] == '-' {
		digits = tok[1:]
	}
	if len(digits) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if len(tok) > 18 { // may overflow: let strconv decide
		m, err := strconv.ParseInt(string(tok), 10, 64)
		return m, err == nil
	}
	if tok[0] == '-' {
		n = -n
	}
	return n, true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// plain marks the bytes a string holds without a check: not '"', '\\' or
// a control character.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString validates the string at b[i] == '"' as fastjson does and
// returns the index just past its closing quote and whether it has escapes.
// Escapes must be JSON's, \u with four hex digits. Control characters are
// refused only after the last escape: fastjson checks just the part of the
// string that follows it.
func scanString(b []byte, i int) (end int, esc, ok bool) {
	ctl := false // a control character since the last escape
	for i++; i < len(b); i++ {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		switch b[i] {
		case '"':
			return i + 1, esc, !ctl
		case '\\':
			esc, ctl = true, false
			if i++; i >= len(b) {
				return i, esc, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return i, esc, false
				}
				for _, c := range b[i+1 : i+5] {
					if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
						return i, esc, false
					}
				}
				i += 4
			default:
				return i, esc, false
			}
		default: // a control character
			ctl = true
		}
	}
	return i, esc, false
}

// scanNumber validates the number at b[i] as fastjson does and returns the
// index just past it.
func scanNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	start := i
	i = skipDigits(b, i)
	if i == start || b[start] == '0' && i-start > 1 {
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		fs := i
		if i = skipDigits(b, i); i == fs {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '-' || b[i] == '+') {
			i++
		}
		es := i
		if i = skipDigits(b, i); i == es {
			return i, false
		}
	}
	return i, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

func literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}
