package mapping

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/backfillhq/backfill/validate"
	"github.com/valyala/fastjson"
)

// state is the per-call scratch space, pooled by the Mapper.
type state struct {
	p     fastjson.Parser // the record
	p2    fastjson.Parser // the encoded event, for validation
	extra []*fastjson.Parser
	next  int // extra parsers in use
	top   []outVal
	objs  []*outObj
	nobj  int
	buf   []byte
	hbuf  []byte
	inner *fastjson.Value // the data of a re-fed dead-letter entry
	// dlInsertID is the insert_id of a re-fed dead-letter entry.
	dlInsertID string
	// profile is set by apply for a record matching the spec's
	// profile_when.
	profile bool
}

func newState() *state {
	return &state{top: make([]outVal, len(fieldNames))}
}

func (st *state) reset() {
	clear(st.top)
	st.next = 0
	st.nobj = 0
	st.inner = nil
	st.dlInsertID = ""
	st.profile = false
}

// parser returns a spare parser whose values live until the call ends.
func (st *state) parser() *fastjson.Parser {
	if st.next == len(st.extra) {
		st.extra = append(st.extra, new(fastjson.Parser))
	}
	p := st.extra[st.next]
	st.next++
	return p
}

func (st *state) newObj() *outObj {
	if st.nobj == len(st.objs) {
		st.objs = append(st.objs, &outObj{})
	}
	o := st.objs[st.nobj]
	st.nobj++
	o.reset()
	return o
}

// decodeString parses a string holding a JSON object or array.
func (st *state) decodeString(v *fastjson.Value) (*fastjson.Value, bool) {
	if v == nil || v.Type() != fastjson.TypeString {
		return nil, false
	}
	b, _ := v.StringBytes()
	s := strings.TrimSpace(string(b))
	if s == "" || (s[0] != '{' && s[0] != '[') {
		return nil, false
	}
	out, err := st.parser().Parse(s)
	if err != nil {
		return nil, false
	}
	return out, true
}

// fieldError is a mapping failure for one field.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return "invalid " + e.field + ": " + e.err.Error() }

// apply maps root into st.top.
func (pl *plan) apply(st *state, root *fastjson.Value) error {
	for _, p := range pl.decodeJSON {
		if v, ok := st.decodeString(p.lookup(root)); ok {
			if parent := p[:len(p)-1].lookup(root); parent != nil && parent.Type() == fastjson.TypeObject {
				o, _ := parent.Object()
				o.Set(p[len(p)-1], v)
			}
		}
	}
	for _, t := range pl.tops {
		v, ok, err := pl.evalTarget(st, root, t)
		if err != nil {
			return err
		}
		if ok {
			st.top[t.slot] = v
		}
	}
	rootObj, _ := root.Object()
	st.profile = len(pl.profileWhen) > 0 && matchAny(root, pl.profileWhen) != ""
	if pl.passthrough {
		var err error
		rootObj.Visit(func(kb []byte, val *fastjson.Value) {
			slot, ok := fieldIndex[string(kb)]
			if err != nil || !ok || pl.explicit[slot] || emptySrc(val) {
				return
			}
			name := fieldNames[slot]
			var v outVal
			v, err = convert(st, name, fieldKinds[name], crule{}, srcVal(val))
			if err == nil {
				st.top[slot] = v
			}
		})
		if err != nil {
			return err
		}
	}
	if pl.unmappedTo >= 0 && !st.profile {
		// A profile is no event: its properties go only where rules put
		// them (user_properties.$set), not into event_properties.
		if src := pl.unmappedFrom.lookup(root); src != nil && src.Type() == fastjson.TypeObject {
			atRoot := len(pl.unmappedFrom) == 0
			o, _ := src.Object()
			o.Visit(func(kb []byte, val *fastjson.Value) {
				if pl.consumed[string(kb)] || val.Type() == fastjson.TypeNull {
					return
				}
				k := string(kb)
				if atRoot && pl.passthrough {
					// CSV columns like "event_properties.color" nest.
					if top, sub, ok := strings.Cut(k, "."); ok && sub != "" {
						if slot, ok := fieldIndex[top]; ok && fieldKinds[top] == validate.KindObject {
							st.setPath(slot, strings.Split(sub, "."), srcVal(val), false)
							return
						}
					}
				}
				st.obj(pl.unmappedTo).add(k, srcVal(val))
			})
		}
	}
	for _, t := range pl.dotted {
		v, ok, err := pl.evalTarget(st, root, t)
		if err != nil {
			return err
		}
		if ok {
			st.setPath(t.slot, t.sub, v, true)
		}
	}
	if pl.hasProps {
		pl.editProps(st)
	}
	return nil
}

// obj returns the object at top-level slot as a mutable outObj, converting a
// copied source object when needed.
func (st *state) obj(slot int) *outObj {
	return st.objAt(&st.top[slot])
}

func (st *state) objAt(v *outVal) *outObj {
	switch v.kind {
	case kObj:
		return v.obj
	case kSrc:
		if v.src.Type() == fastjson.TypeObject {
			o := st.newObj()
			so, _ := v.src.Object()
			so.Visit(func(k []byte, vv *fastjson.Value) { o.set(string(k), srcVal(vv)) })
			*v = outVal{kind: kObj, obj: o}
			return o
		}
	}
	o := st.newObj()
	*v = outVal{kind: kObj, obj: o}
	return o
}

// setPath stores v at sub below the top-level object slot. override=false
// keeps an existing value.
func (st *state) setPath(slot int, sub []string, v outVal, override bool) {
	o := st.obj(slot)
	for _, k := range sub[:len(sub)-1] {
		i := o.index(k)
		if i < 0 {
			o.set(k, outVal{})
			i = len(o.keys) - 1
		}
		o = st.objAt(&o.vals[i])
	}
	last := sub[len(sub)-1]
	if override {
		o.set(last, v)
	} else {
		o.add(last, v)
	}
}

func (pl *plan) editProps(st *state) {
	v := &st.top[fieldIndex["event_properties"]]
	if v.kind == kNone {
		return
	}
	o := st.objAt(v)
	out := st.newObj()
	for i, k := range o.keys {
		if pl.dropExact[k] || hasAnyPrefix(k, pl.dropPrefix) {
			continue
		}
		if nk, ok := pl.rename[k]; ok {
			k = nk
		}
		if pl.allow != nil && !pl.allow[k] {
			continue
		}
		out.set(k, o.vals[i])
	}
	*v = outVal{kind: kObj, obj: out}
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// evalTarget tries the rules of t in order.
func (pl *plan) evalTarget(st *state, root *fastjson.Value, t *target) (outVal, bool, error) {
	name := t.name
	for i := range t.rules {
		r := &t.rules[i]
		if !condsHold(root, r.when, true) || !condsHold(root, r.unless, false) {
			continue
		}
		v, ok := r.value(st, root)
		if !ok {
			continue
		}
		out, err := convert(st, name, t.kind, *r, v)
		if err != nil {
			if r.lenient {
				continue
			}
			return outVal{}, false, err
		}
		if out.isEmpty() {
			continue
		}
		return out, true, nil
	}
	return outVal{}, false, nil
}

// condsHold reports whether all conditions hold (want=true) or none does
// (want=false). A scalar matches its text; "" matches an absent, null or
// empty value; "*" matches any non-empty value, objects and arrays
// included (which match nothing else).
func condsHold(root *fastjson.Value, cs []cond, want bool) bool {
	for _, c := range cs {
		v := c.p.lookup(root)
		s, scalar := srcScalar(v)
		empty := emptySrc(v)
		match := false
		for _, x := range c.vals {
			if (x == "*" && !empty) || (x == "" && empty) || (scalar && x != "" && s == x) {
				match = true
				break
			}
		}
		if match != want {
			return false
		}
	}
	return true
}

// skipReason returns why the record matches a skip_when filter, or "".
func (pl *plan) skipReason(root *fastjson.Value) string {
	for _, cs := range pl.skipWhen {
		if condsHold(root, cs, true) {
			parts := make([]string, len(cs))
			for i, c := range cs {
				s, _ := srcScalar(c.p.lookup(root))
				parts[i] = c.p.String() + "=" + s
			}
			return "skip_when " + strings.Join(parts, ",")
		}
	}
	return ""
}

// firstPresent returns the first non-empty value among alternative paths.
func firstPresent(root *fastjson.Value, alts []path) *fastjson.Value {
	for _, p := range alts {
		if v := p.lookup(root); !emptySrc(v) {
			return v
		}
	}
	return nil
}

// matchAny returns a description of the first condition set of css that
// holds for root, or "".
func matchAny(root *fastjson.Value, css [][]cond) string {
	for _, cs := range css {
		if condsHold(root, cs, true) {
			parts := make([]string, len(cs))
			for i, c := range cs {
				v := c.p.lookup(root)
				s, ok := srcScalar(v)
				switch {
				case emptySrc(v):
					s = "absent"
				case !ok:
					s = "{…}"
				}
				parts[i] = c.p.String() + "=" + s
			}
			return strings.Join(parts, ",")
		}
	}
	return ""
}

// filterReason returns why a mapped event is filtered out, or "".
func (pl *plan) filterReason(eventType string, t int64, hasTime bool) string {
	if pl.dropTypes[eventType] {
		return fmt.Sprintf("event_type %q is in drop_event_types", eventType)
	}
	if pl.keepTypes != nil && !pl.keepTypes[eventType] {
		return fmt.Sprintf("event_type %q is not in keep_event_types", eventType)
	}
	if (pl.hasFrom || pl.hasTo) && !hasTime {
		return "no time while a time window is set"
	}
	if pl.hasFrom && t < pl.timeFrom {
		return fmt.Sprintf("time %d is before time_from", t)
	}
	if pl.hasTo && t >= pl.timeTo {
		return fmt.Sprintf("time %d is not before time_to", t)
	}
	return ""
}

// hashInsertID derives an insert_id from the insert_id.hash paths, or ""
// when a required path is empty.
func (pl *plan) hashInsertID(st *state, root *fastjson.Value) string {
	if len(pl.hash) == 0 {
		return ""
	}
	for _, alts := range pl.require {
		if firstPresent(root, alts) == nil {
			return ""
		}
	}
	b := st.hbuf[:0]
	for i, alts := range pl.hash {
		if i > 0 {
			b = append(b, 0x1f)
		}
		s, _ := srcScalar(firstPresent(root, alts))
		b = append(b, s...)
	}
	st.hbuf = b
	sum := sha256.Sum256(b)
	return "bfh-" + hex.EncodeToString(sum[:16])
}
