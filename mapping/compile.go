package mapping

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/backfillhq/backfill/validate"
)

// fieldNames are the Amplitude top-level fields in canonical output order;
// fieldIndex maps a name to its slot.
var (
	fieldNames = validate.Fields()
	fieldIndex = func() map[string]int {
		m := make(map[string]int, len(fieldNames))
		for i, n := range fieldNames {
			m[n] = i
		}
		return m
	}()
	fieldKinds = func() map[string]validate.Kind {
		m := make(map[string]validate.Kind, len(fieldNames))
		for _, n := range fieldNames {
			m[n] = validate.FieldKind(n)
		}
		return m
	}()
)

type cond struct {
	p    path
	vals []string
}

type tmplPart struct {
	lit string
	p   path // nil for a literal
}

type crule struct {
	from         []path
	hasConst     bool
	constv       outVal
	tmpl         []tmplPart
	when, unless []cond
	ifPrefix     string
	unlessPrefix string
	trimPrefix   string
	sameAs       path
	kvKey        string
	flatten      bool
	time         string
	typ          string
	lower        bool
	lenient      bool
	values       map[string]string
	pair         [2]path
}

type target struct {
	name  string
	slot  int      // index in fieldNames of the top-level field
	sub   []string // keys below the top-level field for dotted targets
	kind  validate.Kind
	rules []crule
}

// plan is a compiled Spec.
type plan struct {
	name        string
	passthrough bool
	fast        bool
	decodeJSON  []path
	tops        []*target // top-level targets, canonical order
	dotted      []*target // dotted targets, sorted by name
	explicit    [64]bool  // slot has an explicit top-level target

	unmappedFrom path
	unmappedTo   int // slot of the object receiving leftovers, -1 = drop
	consumed     map[string]bool

	rename     map[string]string
	dropExact  map[string]bool
	dropPrefix []string
	allow      map[string]bool
	hasProps   bool

	dropTypes, keepTypes map[string]bool
	timeFrom, timeTo     int64
	hasFrom, hasTo       bool
	skipWhen             [][]cond

	hash, require [][]path

	excludeWhen [][]cond
	profileWhen [][]cond
	notes       []string
	keep        []path // paths of keep rules, released after compiling
}

func compile(s *Spec) (*plan, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidSpec, fmt.Sprintf(format, args...))
	}
	pl := &plan{name: s.Name, passthrough: s.Passthrough != nil && *s.Passthrough, consumed: map[string]bool{}}
	for _, d := range s.DecodeJSON {
		p, err := parsePath(d)
		if err != nil {
			return nil, bad("decode_json: %v", err)
		}
		pl.decodeJSON = append(pl.decodeJSON, p)
	}

	pl.unmappedTo = fieldIndex["event_properties"]
	if u := s.Unmapped; u != nil {
		if u.From != "" {
			p, err := parsePath(u.From)
			if err != nil {
				return nil, bad("unmapped.from: %v", err)
			}
			pl.unmappedFrom = p
		}
		switch u.To {
		case "", "event_properties":
		case "user_properties":
			pl.unmappedTo = fieldIndex["user_properties"]
		case "drop":
			pl.unmappedTo = -1
		default:
			return nil, bad("unmapped.to %q: want event_properties, user_properties or drop", u.To)
		}
	}
	if pl.passthrough && len(pl.unmappedFrom) == 0 {
		for _, n := range fieldNames {
			pl.consumed[n] = true
		}
	}

	names := make([]string, 0, len(s.Fields))
	for n := range s.Fields {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		tp, err := parsePath(name)
		if err != nil {
			return nil, bad("target: %v", err)
		}
		slot, ok := fieldIndex[tp[0]]
		if !ok {
			return nil, bad("unknown target field %q (see the Amplitude event fields)", tp[0])
		}
		t := &target{name: name, slot: slot, sub: tp[1:], kind: fieldKinds[tp[0]]}
		if len(t.sub) > 0 {
			if t.kind != validate.KindObject {
				return nil, bad("target %q: %s is not an object field", name, tp[0])
			}
			t.kind = validate.KindUnknown
		}
		for i, r := range s.Fields[name] {
			cr, err := pl.compileRule(r)
			if err != nil {
				return nil, bad("fields.%s[%d]: %v", name, i, err)
			}
			t.rules = append(t.rules, cr)
		}
		if len(t.sub) > 0 {
			pl.dotted = append(pl.dotted, t)
		} else {
			pl.tops = append(pl.tops, t)
			pl.explicit[slot] = true
		}
	}
	pl.releaseKept(s)
	sort.SliceStable(pl.tops, func(i, j int) bool { return pl.tops[i].slot < pl.tops[j].slot })

	if p := s.Properties; p != nil {
		pl.hasProps = true
		pl.rename = p.Rename
		pl.dropExact = map[string]bool{}
		for _, d := range p.Drop {
			if pre, ok := strings.CutSuffix(d, "*"); ok {
				pl.dropPrefix = append(pl.dropPrefix, pre)
			} else {
				pl.dropExact[d] = true
			}
		}
		if len(p.Allow) > 0 {
			pl.allow = map[string]bool{}
			for _, a := range p.Allow {
				pl.allow[a] = true
			}
		}
	}

	if f := s.Filters; f != nil {
		pl.dropTypes = setOf(f.DropEventTypes)
		if len(f.KeepEventTypes) > 0 {
			pl.keepTypes = setOf(f.KeepEventTypes)
		}
		var err error
		if f.TimeFrom != "" {
			if pl.timeFrom, err = parseBound(f.TimeFrom); err != nil {
				return nil, bad("filters.time_from: %v", err)
			}
			pl.hasFrom = true
		}
		if f.TimeTo != "" {
			if pl.timeTo, err = parseBound(f.TimeTo); err != nil {
				return nil, bad("filters.time_to: %v", err)
			}
			pl.hasTo = true
		}
		for i, w := range f.SkipWhen {
			cs, err := compileConds(w)
			if err != nil {
				return nil, bad("filters.skip_when[%d]: %v", i, err)
			}
			pl.skipWhen = append(pl.skipWhen, cs)
		}
	}

	if ii := s.InsertID; ii != nil {
		var err error
		if pl.hash, err = compileAlts(ii.Hash); err != nil {
			return nil, bad("insert_id.hash: %v", err)
		}
		if pl.require, err = compileAlts(ii.Require); err != nil {
			return nil, bad("insert_id.require: %v", err)
		}
	}
	for i, w := range s.ExcludeWhen {
		cs, err := compileConds(w)
		if err != nil {
			return nil, bad("exclude_when[%d]: %v", i, err)
		}
		pl.excludeWhen = append(pl.excludeWhen, cs)
	}
	for i, w := range s.ProfileWhen {
		cs, err := compileConds(w)
		if err != nil {
			return nil, bad("profile_when[%d]: %v", i, err)
		}
		pl.profileWhen = append(pl.profileWhen, cs)
	}
	pl.notes = s.Notes
	return pl, nil
}

// compileAlts compiles a list of entries, each a list of alternative paths.
func compileAlts(xs []Strings) ([][]path, error) {
	var out [][]path
	for _, alts := range xs {
		if len(alts) == 0 {
			return nil, fmt.Errorf("empty entry")
		}
		var ps []path
		for _, a := range alts {
			p, err := parsePath(a)
			if err != nil {
				return nil, err
			}
			ps = append(ps, p)
		}
		out = append(out, ps)
	}
	return out, nil
}

func setOf(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func parseBound(s string) (int64, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.UnixMilli(), nil
	}
	if ms, ok := parseTimestamp(s); ok {
		return ms, nil
	}
	return 0, fmt.Errorf("%q is not a date or RFC 3339 date-time", s)
}

func compileConds(m map[string]Strings) ([]cond, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var cs []cond
	for _, k := range keys {
		p, err := parsePath(k)
		if err != nil {
			return nil, err
		}
		cs = append(cs, cond{p: p, vals: m[k]})
	}
	return cs, nil
}

// releaseKept un-consumes the keys read only by keep rules: a key that some
// rule without keep reads stays consumed.
func (pl *plan) releaseKept(s *Spec) {
	if len(pl.keep) == 0 {
		return
	}
	used := map[string]bool{}
	probe := &plan{unmappedFrom: pl.unmappedFrom, consumed: used}
	for _, rules := range s.Fields {
		for _, r := range rules {
			if r.Keep {
				continue
			}
			_, _ = probe.compileRule(r)
		}
	}
	for _, p := range pl.keep {
		if len(p) > len(pl.unmappedFrom) && p.hasPrefix(pl.unmappedFrom) {
			k := p[len(pl.unmappedFrom)]
			if _, top := fieldIndex[k]; pl.passthrough && len(pl.unmappedFrom) == 0 && top {
				continue // consumed as a passthrough field, not by the rule
			}
			if !used[k] {
				delete(pl.consumed, k)
			}
		}
	}
}

// consume marks the key of p directly below unmapped.from as used.
func (pl *plan) consume(p path) {
	if len(p) > len(pl.unmappedFrom) && p.hasPrefix(pl.unmappedFrom) {
		pl.consumed[p[len(pl.unmappedFrom)]] = true
	}
}

func (pl *plan) compileRule(r Rule) (crule, error) {
	var cr crule
	n := 0
	if len(r.From) > 0 {
		n++
		for _, f := range r.From {
			p, err := parsePath(f)
			if err != nil {
				return cr, err
			}
			cr.from = append(cr.from, p)
			pl.consume(p)
		}
	}
	if r.Const != nil {
		n++
		v, err := constVal(r.Const)
		if err != nil {
			return cr, err
		}
		cr.hasConst, cr.constv = true, v
	}
	if r.Template != "" {
		n++
		parts, err := parseTemplate(r.Template)
		if err != nil {
			return cr, err
		}
		for _, pt := range parts {
			if pt.p != nil {
				pl.consume(pt.p)
			}
		}
		cr.tmpl = parts
	}
	if len(r.Pair) > 0 {
		n++
		if len(r.Pair) != 2 {
			return cr, fmt.Errorf("pair needs two paths: [key, value]")
		}
		for i, f := range r.Pair {
			p, err := parsePath(f)
			if err != nil {
				return cr, err
			}
			cr.pair[i] = p
			pl.consume(p)
		}
	}
	if n != 1 {
		return cr, fmt.Errorf("a rule needs exactly one of from, const, template, pair")
	}
	if r.Keep {
		// Undo the consumption above: the keys stay unmapped too. Only
		// keys that no other rule consumed are released, so compile
		// marks kept keys after all rules (see keepKeys).
		pl.keep = append(pl.keep, cr.from...)
	}
	cr.values = r.Values
	var err error
	if cr.when, err = compileConds(r.When); err != nil {
		return cr, err
	}
	if cr.unless, err = compileConds(r.Unless); err != nil {
		return cr, err
	}
	if r.UnlessSameAs != "" {
		if cr.sameAs, err = parsePath(r.UnlessSameAs); err != nil {
			return cr, err
		}
	}
	if r.Time != "" && !timeUnits[r.Time] {
		return cr, fmt.Errorf("time %q: want s, ms, us, ns, iso or auto", r.Time)
	}
	switch r.Type {
	case "", "string", "int", "float", "bool":
	default:
		return cr, fmt.Errorf("type %q: want string, int, float or bool", r.Type)
	}
	switch r.Flatten {
	case "":
	case "kv":
		cr.flatten = true
	default:
		return cr, fmt.Errorf("flatten %q: want kv", r.Flatten)
	}
	cr.ifPrefix, cr.unlessPrefix, cr.trimPrefix = r.IfPrefix, r.UnlessPrefix, r.TrimPrefix
	cr.kvKey, cr.time, cr.typ, cr.lower, cr.lenient = r.KVKey, r.Time, r.Type, r.Lower, r.Lenient
	return cr, nil
}

func parseTemplate(s string) ([]tmplPart, error) {
	var parts []tmplPart
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			parts = append(parts, tmplPart{lit: s})
			break
		}
		if i > 0 {
			parts = append(parts, tmplPart{lit: s[:i]})
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("template %q: unclosed {", s)
		}
		p, err := parsePath(s[i+1 : i+j])
		if err != nil {
			return nil, fmt.Errorf("template: %v", err)
		}
		parts = append(parts, tmplPart{p: p})
		s = s[i+j+1:]
	}
	if !slices.ContainsFunc(parts, func(p tmplPart) bool { return p.p != nil }) {
		return nil, fmt.Errorf("template %q has no {path}", s)
	}
	return parts, nil
}

// constVal turns a YAML constant into an output value.
func constVal(x any) (outVal, error) {
	switch v := x.(type) {
	case string:
		return strVal(v), nil
	case bool:
		return boolVal(v), nil
	case int:
		return intVal(int64(v)), nil
	case int64:
		return intVal(v), nil
	case uint64, float64:
		b, err := json.Marshal(v)
		if err != nil {
			return outVal{}, err
		}
		return numVal(string(b)), nil
	case map[string]any:
		o := &outObj{}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			cv, err := constVal(v[k])
			if err != nil {
				return outVal{}, err
			}
			o.set(k, cv)
		}
		return outVal{kind: kObj, obj: o}, nil
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return outVal{}, fmt.Errorf("const: %v", err)
		}
		return outVal{kind: kRaw, s: string(b)}, nil
	}
}
