package emulator

// The fastjson-based request parsing this package used before the scanner,
// kept as the reference the scanner is tested against.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// refParseBody is parseBody as the fastjson-based pipeline implemented it.
func refParseBody(p *fastjson.Parser, body []byte, limit int, apiKeys map[string]struct{}) (apiKey []byte, events []event, rep reply, n int, ok bool) {
	if err := fastjson.ValidateBytes(body); err != nil {
		return nil, nil, errorReply(http.StatusBadRequest, errInvalidJSON), 0, false
	}
	root, err := p.ParseBytes(body)
	if err != nil || root.Type() != fastjson.TypeObject {
		return nil, nil, errorReply(http.StatusBadRequest, errInvalidJSON), 0, false
	}
	if limit > 0 && len(body) > limit {
		return nil, nil, errorReply(http.StatusRequestEntityTooLarge, errTooLarge), 0, false
	}
	keyV := root.Get("api_key")
	if keyV != nil && keyV.Type() == fastjson.TypeString {
		apiKey, _ = keyV.StringBytes()
	}
	if len(apiKey) == 0 {
		b := newBadRequest(errMissingField)
		b.MissingField = "api_key"
		return nil, nil, jsonReply(http.StatusBadRequest, b, errMissingField+": api_key"), 0, false
	}
	evV := root.Get("events")
	if evV == nil || evV.Type() != fastjson.TypeArray {
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
	elems, _ := evV.Array()
	if len(elems) > MaxEventsPerRequest {
		return nil, nil, errorReply(http.StatusRequestEntityTooLarge, errTooLarge), len(elems), false
	}
	for _, e := range elems {
		if e.Type() != fastjson.TypeObject {
			return nil, nil, errorReply(http.StatusBadRequest, errInvalidEvent), len(elems), false
		}
	}
	raws := refSplitEvents(body)
	events = make([]event, len(elems))
	minLen := refMinIDLength(root)
	var errs eventErrors
	for i, e := range elems {
		refCheckEvent(i, e, minLen, &events[i], &errs)
		if len(raws) == len(elems) {
			events[i].raw = raws[i]
		} else {
			events[i].raw = e.MarshalTo(nil)
		}
	}
	if errs.any() {
		return nil, nil, errs.reply(), len(events), false
	}
	// The values point into the parser: copy them.
	apiKey = bytes.Clone(apiKey)
	for i := range events {
		ev := &events[i]
		ev.device, ev.user, ev.insertID = bytes.Clone(ev.device), bytes.Clone(ev.user), bytes.Clone(ev.insertID)
	}
	return apiKey, events, reply{}, len(events), true
}

// refIDField classifies a user_id/device_id value.
type refIDField struct {
	val     []byte // the id, when a usable string
	short   bool   // present but shorter than min length: stripped
	badType bool   // present but not a string
	blocked bool
}

func refReadID(v *fastjson.Value, minLen int) refIDField {
	var f refIDField
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
func refCheckEvent(i int, v *fastjson.Value, minLen int, ev *event, errs *eventErrors) {
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
	u := refReadID(userID, minLen)
	d := refReadID(deviceID, minLen)
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
func refMinIDLength(root *fastjson.Value) int {
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
func refSplitEvents(body []byte) [][]byte {
	i := refSkipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil
	}
	i++
	for {
		i = refSkipWS(body, i)
		if i >= len(body) || body[i] != '"' {
			return nil
		}
		end := refSkipString(body, i)
		key := body[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var s string
			if json.Unmarshal(body[i:end], &s) == nil {
				key = []byte(s)
			}
		}
		i = refSkipWS(body, end)
		i++ // ':'
		i = refSkipWS(body, i)
		if string(key) == "events" {
			if body[i] != '[' {
				return nil
			}
			return refSplitArray(body, i)
		}
		i = refSkipValue(body, i)
		i = refSkipWS(body, i)
		if i >= len(body) || body[i] != ',' {
			return nil
		}
		i++
	}
}

func refSplitArray(body []byte, i int) [][]byte {
	var out [][]byte
	i++ // '['
	for {
		i = refSkipWS(body, i)
		if i >= len(body) || body[i] == ']' {
			return out
		}
		start := i
		i = refSkipValue(body, i)
		out = append(out, body[start:i:i])
		i = refSkipWS(body, i)
		if i < len(body) && body[i] == ',' {
			i++
		}
	}
}

func refSkipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i]=='"'.
// A plain loop beats bytes.IndexByte on the short strings events are made of.
func refSkipString(b []byte, i int) int {
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
func refSkipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return refSkipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = refSkipString(b, i)
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
