package reader

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/backfillhq/backfill/internal/jsonstr"
)

// appendString appends s as a JSON string, exactly as jsonstr.Append does
// (ok is false when s is not valid UTF-8), with a fast path for the common
// case of printable ASCII without quotes or backslashes, checked eight bytes
// at a time. It is shared by the CSV and Parquet decoders.
func appendString(b []byte, s string) ([]byte, bool) {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if needsEscape(w) {
			return jsonstr.Append(b, s)
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return jsonstr.Append(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// needsEscape reports whether any byte of w is a control character, a
// quote, a backslash or not ASCII.
func needsEscape(w uint64) bool {
	q := w ^ (lsb * '"')
	bs := w ^ (lsb * '\\')
	return (w|(w-lsb*0x20)|(q-lsb)&^q|(bs-lsb)&^bs)&msb != 0
}

// pqWriter writes the values of one Arrow array as JSON: it is the reader's
// one Arrow-to-JSON renderer. It is built once per record batch, so the
// type switch runs once per column and batch rather than once per value.
// Structs and maps become objects (null members omitted), lists arrays
// (null elements kept as null), timestamps integer milliseconds since the
// epoch, dates "YYYY-MM-DD", binary a string when it is valid UTF-8 and
// base64 otherwise, NaN and infinities null.
type pqWriter struct {
	valid  []byte         // validity bitmap; nil when the array has no nulls or uses isNull
	off    int            // the array's offset into valid
	isNull func(int) bool // types outside the fast paths
	write  func(b []byte, i int) ([]byte, error)
}

func (w *pqWriter) null(i int) bool {
	if w.valid != nil {
		j := w.off + i
		return w.valid[j>>3]&(1<<(j&7)) == 0
	}
	return w.isNull != nil && w.isNull(i)
}

// pqField is a named member: a top-level column or a struct field.
type pqField struct {
	name string
	key  []byte // "name":
	pqWriter
}

func newPQField(name string, a arrow.Array) pqField {
	key, _ := jsonstr.Append(nil, name)
	return pqField{name: name, key: append(key, ':'), pqWriter: newPQWriter(a)}
}

// newPQWriter returns the writer of a. Common types write without a type
// switch per value and test nulls on the validity bitmap; the others test
// them with IsNull.
func newPQWriter(a arrow.Array) pqWriter {
	w := pqWriter{}
	fast := true
	switch a := a.(type) {
	case *array.Boolean:
		w.write = func(b []byte, i int) ([]byte, error) { return strconv.AppendBool(b, a.Value(i)), nil }
	case *array.Int8:
		w.write = func(b []byte, i int) ([]byte, error) { return strconv.AppendInt(b, int64(a.Value(i)), 10), nil }
	case *array.Int16:
		w.write = func(b []byte, i int) ([]byte, error) { return strconv.AppendInt(b, int64(a.Value(i)), 10), nil }
	case *array.Int32:
		w.write = func(b []byte, i int) ([]byte, error) { return strconv.AppendInt(b, int64(a.Value(i)), 10), nil }
	case *array.Int64:
		w.write = func(b []byte, i int) ([]byte, error) { return strconv.AppendInt(b, a.Value(i), 10), nil }
	case *array.Uint8:
		w.write = func(b []byte, i int) ([]byte, error) { return strconv.AppendUint(b, uint64(a.Value(i)), 10), nil }
	case *array.Uint16:
		w.write = func(b []byte, i int) ([]byte, error) { return strconv.AppendUint(b, uint64(a.Value(i)), 10), nil }
	case *array.Uint32:
		w.write = func(b []byte, i int) ([]byte, error) { return strconv.AppendUint(b, uint64(a.Value(i)), 10), nil }
	case *array.Uint64:
		w.write = func(b []byte, i int) ([]byte, error) { return strconv.AppendUint(b, a.Value(i), 10), nil }
	case *array.Float32:
		w.write = func(b []byte, i int) ([]byte, error) { return appendFloatOrNull(b, float64(a.Value(i)), 32), nil }
	case *array.Float64:
		w.write = func(b []byte, i int) ([]byte, error) { return appendFloatOrNull(b, a.Value(i), 64), nil }
	case *array.String:
		w.write = func(b []byte, i int) ([]byte, error) {
			b, ok := appendString(b, a.Value(i))
			if !ok {
				return b, errInvalidUTF8
			}
			return b, nil
		}
	case *array.LargeString:
		w.write = func(b []byte, i int) ([]byte, error) {
			b, ok := appendString(b, a.Value(i))
			if !ok {
				return b, errInvalidUTF8
			}
			return b, nil
		}
	case *array.Binary:
		w.write = func(b []byte, i int) ([]byte, error) { return appendBinary(b, a.Value(i)), nil }
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		w.write = func(b []byte, i int) ([]byte, error) {
			return strconv.AppendInt(b, toMillis(int64(a.Value(i)), unit), 10), nil
		}
	case *array.Dictionary:
		if a.Data().Dictionary() == nil { // no values in this batch: every row is null
			fast = false
			w.isNull = a.IsNull
			w.write = func(b []byte, i int) ([]byte, error) {
				return b, fmt.Errorf("dictionary column without values")
			}
			break
		}
		w.write = dictWriter(a)
	case *array.Struct:
		w.write = structWriter(a)
	case *array.Map: // before List: a Map is also a list
		w.write = mapWriter(a)
	case *array.List:
		w.write = listWriter(a.ListValues(), a.ValueOffsets)
	case *array.LargeList:
		w.write = listWriter(a.ListValues(), a.ValueOffsets)
	default:
		// The less common types: nulls by IsNull.
		fast = false
		w.isNull = a.IsNull
		w.write = otherWriter(a)
	}
	if fast && a.NullN() > 0 {
		w.valid, w.off = a.NullBitmapBytes(), a.Data().Offset()
	}
	return w
}

func structWriter(a *array.Struct) func([]byte, int) ([]byte, error) {
	st := a.DataType().(*arrow.StructType)
	fields := make([]pqField, a.NumField())
	for j := range fields {
		fields[j] = newPQField(st.Field(j).Name, a.Field(j))
	}
	return func(b []byte, i int) ([]byte, error) {
		b = append(b, '{')
		n := 0
		for j := range fields {
			f := &fields[j]
			if f.null(i) {
				continue
			}
			if n > 0 {
				b = append(b, ',')
			}
			n++
			b = append(b, f.key...)
			var err error
			if b, err = f.write(b, i); err != nil {
				return b, fmt.Errorf("%s: %w", f.name, err)
			}
		}
		return append(b, '}'), nil
	}
}

func listWriter(vals arrow.Array, offsets func(int) (int64, int64)) func([]byte, int) ([]byte, error) {
	v := newPQWriter(vals)
	return func(b []byte, i int) ([]byte, error) {
		start, end := offsets(i)
		b = append(b, '[')
		for k := int(start); k < int(end); k++ {
			if k > int(start) {
				b = append(b, ',')
			}
			if v.null(k) {
				b = append(b, "null"...)
				continue
			}
			var err error
			if b, err = v.write(b, k); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	}
}

func mapWriter(a *array.Map) func([]byte, int) ([]byte, error) {
	keys := a.Keys()
	ks, strKeys := keys.(*array.String)
	items := newPQWriter(a.Items())
	return func(b []byte, i int) ([]byte, error) {
		start, end := a.ValueOffsets(i)
		b = append(b, '{')
		n := 0
		for k := int(start); k < int(end); k++ {
			if items.null(k) {
				continue
			}
			if n > 0 {
				b = append(b, ',')
			}
			n++
			if strKeys {
				var ok bool
				if b, ok = appendString(b, ks.Value(k)); !ok {
					return b, errInvalidUTF8
				}
			} else {
				b, _ = jsonstr.Append(b, keys.ValueStr(k))
			}
			b = append(b, ':')
			var err error
			if b, err = items.write(b, k); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	}
}

// dictWriter writes a dictionary array. With int32 indices (what pqarrow
// reads) into strings, the JSON of every dictionary value is encoded once
// per batch and copied per row.
func dictWriter(a *array.Dictionary) func([]byte, int) ([]byte, error) {
	vals := newPQWriter(a.Dictionary())
	generic := func(b []byte, i int) ([]byte, error) {
		k := a.GetValueIndex(i)
		if vals.null(k) {
			return append(b, "null"...), nil
		}
		return vals.write(b, k)
	}
	idx, ok1 := a.Indices().(*array.Int32)
	dict, ok2 := a.Dictionary().(*array.String)
	if !ok1 || !ok2 {
		return generic
	}
	ix := idx.Int32Values()
	// enc holds the JSON of the values: value k is enc[spans[k]:spans[k+1]],
	// never empty (at least ""), or generic's when the span is empty (a
	// null, or not valid UTF-8).
	n := dict.Len()
	enc := make([]byte, 0, len(dict.ValueBytes())+2*n)
	spans := make([]int, n+1)
	for k := range n {
		if !dict.IsNull(k) {
			start := len(enc)
			var ok bool
			if enc, ok = appendString(enc, dict.Value(k)); !ok {
				enc = enc[:start]
			}
		}
		spans[k+1] = len(enc)
	}
	return func(b []byte, i int) ([]byte, error) {
		k := ix[i]
		if start, end := spans[k], spans[k+1]; start < end {
			return append(b, enc[start:end]...), nil
		}
		return generic(b, i)
	}
}

// otherWriter writes the types outside newPQWriter's fast paths.
func otherWriter(a arrow.Array) func([]byte, int) ([]byte, error) {
	str := func(b []byte, s string) ([]byte, error) {
		b, ok := appendString(b, s)
		if !ok {
			return b, errInvalidUTF8
		}
		return b, nil
	}
	switch a := a.(type) {
	case *array.Float16:
		return func(b []byte, i int) ([]byte, error) {
			return appendFloatOrNull(b, float64(a.Value(i).Float32()), 32), nil
		}
	case *array.StringView:
		return func(b []byte, i int) ([]byte, error) { return str(b, a.Value(i)) }
	case *array.LargeBinary:
		return func(b []byte, i int) ([]byte, error) { return appendBinary(b, a.Value(i)), nil }
	case *array.BinaryView:
		return func(b []byte, i int) ([]byte, error) { return appendBinary(b, a.Value(i)), nil }
	case *array.FixedSizeBinary:
		return func(b []byte, i int) ([]byte, error) { return appendBinary(b, a.Value(i)), nil }
	case *array.Date32:
		return func(b []byte, i int) ([]byte, error) {
			return append(b, `"`+a.Value(i).ToTime().Format(time.DateOnly)+`"`...), nil
		}
	case *array.Date64:
		return func(b []byte, i int) ([]byte, error) {
			return append(b, `"`+a.Value(i).ToTime().Format(time.DateOnly)+`"`...), nil
		}
	case *array.Duration:
		unit := a.DataType().(*arrow.DurationType).Unit
		return func(b []byte, i int) ([]byte, error) {
			return strconv.AppendInt(b, toMillis(int64(a.Value(i)), unit), 10), nil
		}
	case array.ListLike: // fixed-size lists, list views
		return listWriter(a.ListValues(), a.ValueOffsets)
	case array.ExtensionArray:
		inner := newPQWriter(a.Storage())
		return func(b []byte, i int) ([]byte, error) {
			if inner.null(i) {
				return append(b, "null"...), nil
			}
			return inner.write(b, i)
		}
	}
	switch a.DataType().ID() {
	case arrow.DECIMAL32, arrow.DECIMAL64, arrow.DECIMAL128, arrow.DECIMAL256:
		return func(b []byte, i int) ([]byte, error) { return append(b, a.ValueStr(i)...), nil }
	case arrow.TIME32, arrow.TIME64:
		return func(b []byte, i int) ([]byte, error) {
			b, _ = jsonstr.Append(b, a.ValueStr(i))
			return b, nil
		}
	}
	return func(b []byte, i int) ([]byte, error) {
		v, err := json.Marshal(a.GetOneForMarshal(i))
		if err != nil {
			return b, err
		}
		return append(b, v...), nil
	}
}
