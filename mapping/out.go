package mapping

import (
	"strconv"

	"github.com/backfillhq/backfill/validate"
	"github.com/valyala/fastjson"
)

// valKind tells what an outVal holds.
type valKind uint8

const (
	kNone valKind = iota
	kStr          // s
	kNum          // s is the JSON text of a valid number
	kBool         // b
	kSrc          // src: a value of a parsed source record, copied as is
	kObj          // obj: an object built by the mapping
	kRaw          // s is a valid JSON text (constants)
)

// outVal is one value of the event being built. Building our own small tree
// (rather than fastjson Arena values) keeps string escaping under our control.
type outVal struct {
	kind valKind
	b    bool
	s    string
	src  *fastjson.Value
	obj  *outObj
}

func strVal(s string) outVal { return outVal{kind: kStr, s: s} }
func numVal(s string) outVal { return outVal{kind: kNum, s: s} }
func intVal(n int64) outVal  { return outVal{kind: kNum, s: strconv.FormatInt(n, 10)} }
func boolVal(b bool) outVal  { return outVal{kind: kBool, b: b} }
func srcVal(v *fastjson.Value) outVal {
	if v == nil {
		return outVal{}
	}
	return outVal{kind: kSrc, src: v}
}

// outObj is an insertion-ordered object.
type outObj struct {
	keys []string
	vals []outVal
}

func (o *outObj) reset() {
	clear(o.vals)
	o.keys = o.keys[:0]
	o.vals = o.vals[:0]
}

func (o *outObj) index(k string) int {
	for i, kk := range o.keys {
		if kk == k {
			return i
		}
	}
	return -1
}

// set replaces the value of k, or appends k.
func (o *outObj) set(k string, v outVal) {
	if i := o.index(k); i >= 0 {
		o.vals[i] = v
		return
	}
	o.keys = append(o.keys, k)
	o.vals = append(o.vals, v)
}

// add appends k unless it is already present.
func (o *outObj) add(k string, v outVal) {
	if o.index(k) < 0 {
		o.keys = append(o.keys, k)
		o.vals = append(o.vals, v)
	}
}

// appendOut encodes v as JSON.
func appendOut(dst []byte, v outVal) ([]byte, error) {
	switch v.kind {
	case kStr:
		return validate.AppendString(dst, v.s), nil
	case kNum, kRaw:
		return append(dst, v.s...), nil
	case kBool:
		return strconv.AppendBool(dst, v.b), nil
	case kSrc:
		return validate.AppendValue(dst, v.src)
	case kObj:
		return appendObj(dst, v.obj)
	}
	return append(dst, "null"...), nil
}

func appendObj(dst []byte, o *outObj) ([]byte, error) {
	dst = append(dst, '{')
	var err error
	for i, k := range o.keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = validate.AppendString(dst, k)
		dst = append(dst, ':')
		if dst, err = appendOut(dst, o.vals[i]); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// isEmpty reports whether v counts as absent: nothing, null, "", [] or {}.
func (v outVal) isEmpty() bool {
	switch v.kind {
	case kNone:
		return true
	case kStr:
		return v.s == ""
	case kObj:
		return len(v.obj.keys) == 0
	case kSrc:
		return emptySrc(v.src)
	}
	return false
}

func emptySrc(v *fastjson.Value) bool {
	if v == nil {
		return true
	}
	switch v.Type() {
	case fastjson.TypeNull:
		return true
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return len(b) == 0
	case fastjson.TypeArray:
		a, _ := v.Array()
		return len(a) == 0
	case fastjson.TypeObject:
		o, _ := v.Object()
		return o.Len() == 0
	}
	return false
}

// scalar returns the text of a scalar value: strings as they are, numbers as
// written, booleans as true/false. ok is false for nothing, null, objects
// and arrays.
func (v outVal) scalar() (s string, ok bool) {
	switch v.kind {
	case kStr, kNum:
		return v.s, true
	case kBool:
		return strconv.FormatBool(v.b), true
	case kSrc:
		return srcScalar(v.src)
	}
	return "", false
}

func srcScalar(v *fastjson.Value) (string, bool) {
	if v == nil {
		return "", false
	}
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return string(b), true
	case fastjson.TypeNumber:
		var buf [32]byte
		return string(v.MarshalTo(buf[:0])), true
	case fastjson.TypeTrue:
		return "true", true
	case fastjson.TypeFalse:
		return "false", true
	}
	return "", false
}
