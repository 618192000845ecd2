package mapping

import (
	"strings"

	"github.com/backfillhq/backfill/validate"
	"github.com/valyala/fastjson"
)

// value computes the raw (unconverted) value of a rule.
func (r *crule) value(st *state, root *fastjson.Value) (outVal, bool) {
	switch {
	case r.hasConst:
		return r.constv, true
	case r.pair[0] != nil:
		k, ok := srcScalar(r.pair[0].lookup(root))
		vsrc := r.pair[1].lookup(root)
		if !ok || k == "" || emptySrc(vsrc) {
			return outVal{}, false
		}
		o := st.newObj()
		o.set(k, srcVal(vsrc))
		return outVal{kind: kObj, obj: o}, true
	case r.tmpl != nil:
		var sb strings.Builder
		for _, p := range r.tmpl {
			if p.p == nil {
				sb.WriteString(p.lit)
				continue
			}
			s, ok := srcScalar(p.p.lookup(root))
			if !ok || s == "" {
				return outVal{}, false
			}
			sb.WriteString(s)
		}
		return strVal(sb.String()), true
	}
	for _, p := range r.from {
		src := p.lookup(root)
		if emptySrc(src) {
			continue
		}
		v := srcVal(src)
		if r.kvKey != "" {
			if v, _ = kvLookup(src, r.kvKey); v.isEmpty() {
				continue
			}
		}
		if r.flatten {
			if src.Type() != fastjson.TypeArray {
				continue
			}
			v = st.flattenKV(src)
		}
		if r.ifPrefix != "" || r.unlessPrefix != "" || r.trimPrefix != "" || r.sameAs != nil {
			s, ok := v.scalar()
			if !ok {
				continue
			}
			if r.ifPrefix != "" && !strings.HasPrefix(s, r.ifPrefix) {
				continue
			}
			if r.unlessPrefix != "" && strings.HasPrefix(s, r.unlessPrefix) {
				continue
			}
			if r.sameAs != nil {
				if other, ok := srcScalar(r.sameAs.lookup(root)); ok && other == s {
					continue
				}
			}
			if r.trimPrefix != "" {
				if t, ok := strings.CutPrefix(s, r.trimPrefix); ok {
					v = strVal(t)
				}
			}
		}
		if r.values != nil {
			s, ok := v.scalar()
			out, listed := r.values[s]
			if !ok || !listed {
				continue
			}
			v = strVal(out)
		}
		return v, true
	}
	return outVal{}, false
}

// kvValue returns the value of a GA4-style {key, value:{string_value,
// int_value, float_value, double_value}} entry. BigQuery JSON exports write
// INT64 as strings, so an integer string in int_value becomes a number.
func kvValue(entry *fastjson.Value) outVal {
	val := entry.Get("value")
	if val == nil {
		return outVal{}
	}
	if val.Type() != fastjson.TypeObject {
		return srcVal(val)
	}
	for _, k := range [...]string{"string_value", "int_value", "double_value", "float_value"} {
		x := val.Get(k)
		if x == nil || x.Type() == fastjson.TypeNull {
			continue
		}
		if k == "int_value" && x.Type() == fastjson.TypeString {
			b, _ := x.StringBytes()
			if validate.IsInteger(b) {
				return numVal(string(b))
			}
		}
		return srcVal(x)
	}
	return outVal{}
}

func kvLookup(arr *fastjson.Value, key string) (outVal, bool) {
	a, err := arr.Array()
	if err != nil {
		return outVal{}, false
	}
	for _, e := range a {
		if k, ok := srcScalar(e.Get("key")); ok && k == key {
			return kvValue(e), true
		}
	}
	return outVal{}, false
}

func (st *state) flattenKV(arr *fastjson.Value) outVal {
	o := st.newObj()
	a, _ := arr.Array()
	for _, e := range a {
		k, ok := srcScalar(e.Get("key"))
		if !ok || k == "" {
			continue
		}
		if v := kvValue(e); v.kind != kNone {
			o.set(k, v)
		}
	}
	return outVal{kind: kObj, obj: o}
}

// convert casts v to what target name of kind k needs.
func convert(st *state, name string, k validate.Kind, r crule, v outVal) (outVal, error) {
	if v.isEmpty() {
		return outVal{}, nil
	}
	var err error
	fail := func(e error) (outVal, error) { return outVal{}, &fieldError{field: name, err: e} }
	typ := r.typ
	switch k {
	case validate.KindString:
		typ = "string"
	case validate.KindInt:
		typ = "int"
	case validate.KindFloat:
		typ = "float"
	case validate.KindBool:
		typ = "bool"
	case validate.KindObject:
		switch kindOf(v) {
		case 'o':
			return v, nil
		case 's':
			if v.kind == kSrc {
				if d, ok := st.decodeString(v.src); ok && d.Type() == fastjson.TypeObject {
					return srcVal(d), nil
				}
			}
		}
		return fail(convFail("%s is not an object", describe(v)))
	}
	if r.time != "" || (name == "time" && typ == "int") {
		ms, err := timeToMS(v, r.time)
		if err != nil {
			return fail(err)
		}
		return intVal(ms), nil
	}
	switch typ {
	case "string":
		var s string
		if s, err = toString(v); err != nil {
			return fail(err)
		}
		if r.lower {
			s = strings.ToLower(s)
		}
		return strVal(s), nil
	case "int":
		n, err := toInt(v)
		if err != nil {
			return fail(err)
		}
		return intVal(n), nil
	case "float":
		if v, err = toFloat(v); err != nil {
			return fail(err)
		}
		return v, nil
	case "bool":
		b, err := toBool(v)
		if err != nil {
			return fail(err)
		}
		return boolVal(b), nil
	}
	if r.lower {
		if s, ok := v.scalar(); ok && kindOf(v) == 's' {
			return strVal(strings.ToLower(s)), nil
		}
	}
	return v, nil
}
