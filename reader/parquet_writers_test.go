package reader

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/backfillhq/backfill/internal/jsonstr"
)

// The per-column writers (newPQWriter) must render every row exactly as the
// original per-value type switch did. refAppendValue is that original,
// kept verbatim; the test compares both on random batches of every type the
// reader handles, with nulls, nesting, slices and invalid UTF-8.

var refTypesStruct = arrow.StructOf(
	arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	arrow.Field{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	arrow.Field{Name: "q\"é", Type: arrow.BinaryTypes.String, Nullable: true},
)

var refSchema = arrow.NewSchema([]arrow.Field{
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true},
	{Name: "i16", Type: arrow.PrimitiveTypes.Int16, Nullable: true},
	{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "i64", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "u8", Type: arrow.PrimitiveTypes.Uint8, Nullable: true},
	{Name: "u16", Type: arrow.PrimitiveTypes.Uint16, Nullable: true},
	{Name: "u32", Type: arrow.PrimitiveTypes.Uint32, Nullable: true},
	{Name: "u64", Type: arrow.PrimitiveTypes.Uint64, Nullable: true},
	{Name: "f16", Type: arrow.FixedWidthTypes.Float16, Nullable: true},
	{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	{Name: "f64", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "ls", Type: arrow.BinaryTypes.LargeString, Nullable: true},
	{Name: "sv", Type: arrow.BinaryTypes.StringView, Nullable: true},
	{Name: "bin", Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: "lbin", Type: arrow.BinaryTypes.LargeBinary, Nullable: true},
	{Name: "fsb", Type: &arrow.FixedSizeBinaryType{ByteWidth: 3}, Nullable: true},
	{Name: "d32", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
	{Name: "d64", Type: arrow.FixedWidthTypes.Date64, Nullable: true},
	{Name: "ts_s", Type: &arrow.TimestampType{Unit: arrow.Second}, Nullable: true},
	{Name: "ts_ms", Type: &arrow.TimestampType{Unit: arrow.Millisecond}, Nullable: true},
	{Name: "ts_us", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "ts_ns", Type: &arrow.TimestampType{Unit: arrow.Nanosecond}, Nullable: true},
	{Name: "dur", Type: &arrow.DurationType{Unit: arrow.Microsecond}, Nullable: true},
	{Name: "t32", Type: arrow.FixedWidthTypes.Time32ms, Nullable: true},
	{Name: "dec", Type: &arrow.Decimal128Type{Precision: 10, Scale: 2}, Nullable: true},
	{Name: "st", Type: refTypesStruct, Nullable: true},
	{Name: "lst", Type: arrow.ListOf(refTypesStruct), Nullable: true},
	{Name: "ll", Type: arrow.LargeListOf(arrow.PrimitiveTypes.Float64), Nullable: true},
	{Name: "ms", Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int64), Nullable: true},
	{Name: "mi", Type: arrow.MapOf(arrow.PrimitiveTypes.Int32, arrow.ListOf(arrow.BinaryTypes.String)), Nullable: true},
	{Name: "dict", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, Nullable: true},
	{Name: "key\n\"\xff", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

var refStrings = []string{"", "a", "plain", "exactly8", "seven\"x", "q\"b\\", "a\nb\tc\rd\x01", "héllo ✓", "bad\xffbyte",
	"https://www.google.com/search?q=1", "0123456789abcdef0123456789abcdef\\", "\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x1f",
	"São Paulo", "ab\x00cd", "\xe2\x82", "trailing\xc3"}

func refRandString(r *rand.Rand) string {
	if r.IntN(2) == 0 {
		return refStrings[r.IntN(len(refStrings))]
	}
	b := make([]byte, r.IntN(24))
	for i := range b {
		switch r.IntN(10) {
		case 0:
			b[i] = byte(r.IntN(256))
		case 1:
			b[i] = byte(r.IntN(0x20))
		case 2:
			b[i] = `"\/`[r.IntN(3)]
		default:
			b[i] = byte(0x20 + r.IntN(0x5f))
		}
	}
	return string(b)
}

func refRandFloat(r *rand.Rand) float64 {
	switch r.IntN(8) {
	case 0:
		return math.NaN()
	case 1:
		return math.Inf(1 - 2*r.IntN(2))
	case 2:
		return 0
	case 3:
		return 1e-7 * r.Float64()
	case 4:
		return 1e22 * r.NormFloat64()
	case 5:
		return float64(r.IntN(50000)) / 100
	}
	return math.Float64frombits(r.Uint64())
}

// refFill appends one random value (or a null) to bld.
func refFill(t *testing.T, r *rand.Rand, bld array.Builder, nullable bool) {
	if nullable && r.IntN(5) == 0 {
		bld.AppendNull()
		return
	}
	switch b := bld.(type) {
	case *array.BooleanBuilder:
		b.Append(r.IntN(2) == 0)
	case *array.Int8Builder:
		b.Append(int8(r.Uint32()))
	case *array.Int16Builder:
		b.Append(int16(r.Uint32()))
	case *array.Int32Builder:
		b.Append(int32(r.Uint32()))
	case *array.Int64Builder:
		b.Append(int64(r.Uint64()) >> r.IntN(64))
	case *array.Uint8Builder:
		b.Append(uint8(r.Uint32()))
	case *array.Uint16Builder:
		b.Append(uint16(r.Uint32()))
	case *array.Uint32Builder:
		b.Append(r.Uint32())
	case *array.Uint64Builder:
		b.Append(r.Uint64() >> r.IntN(64))
	case *array.Float16Builder:
		b.Append(float16.New(float32(refRandFloat(r))))
	case *array.Float32Builder:
		b.Append(float32(refRandFloat(r)))
	case *array.Float64Builder:
		b.Append(refRandFloat(r))
	case *array.StringBuilder:
		b.Append(refRandString(r))
	case *array.LargeStringBuilder:
		b.Append(refRandString(r))
	case *array.StringViewBuilder:
		b.Append(refRandString(r))
	case *array.BinaryBuilder:
		b.Append([]byte(refRandString(r)))
	case *array.FixedSizeBinaryBuilder:
		s := refRandString(r) + "xyz"
		b.Append([]byte(s[:3]))
	case *array.Date32Builder:
		b.Append(arrow.Date32(int32(r.IntN(40000) - 10000)))
	case *array.Date64Builder:
		b.Append(arrow.Date64(int64(r.IntN(40000)-10000) * 86400000))
	case *array.TimestampBuilder:
		b.Append(arrow.Timestamp(int64(r.Uint64()) >> r.IntN(40)))
	case *array.DurationBuilder:
		b.Append(arrow.Duration(int64(r.Uint64()) >> r.IntN(40)))
	case *array.Time32Builder:
		b.Append(arrow.Time32(r.IntN(86400000)))
	case *array.Decimal128Builder:
		b.Append(decimal128.FromI64(int64(r.Uint64()) >> r.IntN(64)))
	case *array.StructBuilder:
		b.Append(true)
		for j := range b.NumField() {
			refFill(t, r, b.FieldBuilder(j), true)
		}
	case *array.MapBuilder:
		b.Append(true)
		for range r.IntN(4) {
			refFill(t, r, b.KeyBuilder(), false)
			refFill(t, r, b.ItemBuilder(), true)
		}
	case *array.ListBuilder:
		b.Append(true)
		for range r.IntN(4) {
			refFill(t, r, b.ValueBuilder(), true)
		}
	case *array.LargeListBuilder:
		b.Append(true)
		for range r.IntN(4) {
			refFill(t, r, b.ValueBuilder(), true)
		}
	case *array.BinaryDictionaryBuilder:
		if err := b.AppendString(refStrings[r.IntN(len(refStrings))]); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("no filler for %T", bld)
	}
}

// refRow is the row rendering of the original parquetDecoder.next.
func refRow(batch arrow.RecordBatch, i int) ([]byte, error) {
	b := []byte{'{'}
	n := 0
	sc := batch.Schema()
	for c, col := range batch.Columns() {
		if col.IsNull(i) {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		name := sc.Field(c).Name
		b, _ = jsonstr.Append(b, name)
		b = append(b, ':')
		var err error
		if b, err = refAppendValue(b, col, i); err != nil {
			return nil, fmt.Errorf("column %q: %v", name, err)
		}
	}
	return append(b, '}'), nil
}

// newRow is the row rendering of parquetDecoder.next with its writers.
func newRow(p *parquetDecoder, i int) ([]byte, error) {
	b := []byte{'{'}
	n := 0
	for c := range p.cols {
		col := &p.cols[c]
		if col.null(i) {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, col.key...)
		var err error
		if b, err = col.write(b, i); err != nil {
			return nil, fmt.Errorf("column %q: %v", col.name, err)
		}
	}
	return append(b, '}'), nil
}

func TestParquetWritersMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	rows, errs := 0, 0
	for round := range 40 {
		bld := array.NewRecordBuilder(memory.DefaultAllocator, refSchema)
		n := 1 + r.IntN(200)
		for range n {
			for j := range refSchema.NumFields() {
				refFill(t, r, bld.Field(j), round%4 != 3)
			}
		}
		batch := bld.NewRecordBatch()
		bld.Release()
		batches := []arrow.RecordBatch{batch}
		if n > 4 { // sliced arrays have non-zero offsets
			lo := int64(r.IntN(n / 2))
			batches = append(batches, batch.NewSlice(lo, lo+int64(r.IntN(n/2))+1))
		}
		for _, rb := range batches {
			var p parquetDecoder
			p.setBatch(rb)
			for i := range int(rb.NumRows()) {
				want, wantErr := refRow(rb, i)
				got, gotErr := newRow(&p, i)
				if fmt.Sprint(wantErr) != fmt.Sprint(gotErr) || string(want) != string(got) {
					t.Fatalf("round %d row %d:\n got %s %v\nwant %s %v", round, i, got, gotErr, want, wantErr)
				}
				if wantErr == nil && !json.Valid(got) {
					t.Fatalf("round %d row %d: invalid JSON %s", round, i, got)
				}
				rows++
				if wantErr != nil {
					errs++
				}
			}
			if rb != batch {
				rb.Release()
			}
		}
		batch.Release()
	}
	if errs == 0 || errs == rows {
		t.Fatalf("%d rows, %d with errors: want some of each", rows, errs)
	}
}

func TestAppendStringMatchesJSONStr(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	check := func(s string) {
		want, wantOK := jsonstr.Append([]byte("x"), s)
		got, gotOK := appendString([]byte("x"), s)
		if string(got) != string(want) || gotOK != wantOK {
			t.Fatalf("appendString(%q) = %s, %v; want %s, %v", s, got, gotOK, want, wantOK)
		}
		if isASCII(s) != (strings.IndexFunc(s, func(c rune) bool { return c >= utf8.RuneSelf }) < 0) {
			t.Fatalf("isASCII(%q) = %v", s, isASCII(s))
		}
	}
	for _, s := range refStrings {
		check(s)
	}
	for c := range 256 { // every byte at every position of a 17-byte string
		for pos := range 17 {
			b := []byte("abcdefghijklmnopq")
			b[pos] = byte(c)
			check(string(b))
		}
	}
	for range 100000 {
		check(refRandString(r))
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range refStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, wantOK := jsonstr.Append(nil, s)
		got, gotOK := appendString(nil, s)
		if string(got) != string(want) || gotOK != wantOK {
			t.Fatalf("appendString(%q) = %s, %v; want %s, %v", s, got, gotOK, want, wantOK)
		}
	})
}

// Keep the imports the verbatim reference needs.
var (
	_ = base64.StdEncoding
	_ = strconv.AppendInt
	_ = time.DateOnly
)

func refAppendValue(b []byte, a arrow.Array, i int) ([]byte, error) {
	if a.IsNull(i) {
		return append(b, "null"...), nil
	}
	var ok bool
	switch a := a.(type) {
	case *array.Boolean:
		return strconv.AppendBool(b, a.Value(i)), nil
	case *array.Int8:
		return strconv.AppendInt(b, int64(a.Value(i)), 10), nil
	case *array.Int16:
		return strconv.AppendInt(b, int64(a.Value(i)), 10), nil
	case *array.Int32:
		return strconv.AppendInt(b, int64(a.Value(i)), 10), nil
	case *array.Int64:
		return strconv.AppendInt(b, a.Value(i), 10), nil
	case *array.Uint8:
		return strconv.AppendUint(b, uint64(a.Value(i)), 10), nil
	case *array.Uint16:
		return strconv.AppendUint(b, uint64(a.Value(i)), 10), nil
	case *array.Uint32:
		return strconv.AppendUint(b, uint64(a.Value(i)), 10), nil
	case *array.Uint64:
		return strconv.AppendUint(b, a.Value(i), 10), nil
	case *array.Float16:
		return appendFloatOrNull(b, float64(a.Value(i).Float32()), 32), nil
	case *array.Float32:
		return appendFloatOrNull(b, float64(a.Value(i)), 32), nil
	case *array.Float64:
		return appendFloatOrNull(b, a.Value(i), 64), nil
	case *array.String:
		if b, ok = jsonstr.Append(b, a.Value(i)); !ok {
			return b, errInvalidUTF8
		}
		return b, nil
	case *array.LargeString:
		if b, ok = jsonstr.Append(b, a.Value(i)); !ok {
			return b, errInvalidUTF8
		}
		return b, nil
	case *array.StringView:
		if b, ok = jsonstr.Append(b, a.Value(i)); !ok {
			return b, errInvalidUTF8
		}
		return b, nil
	case *array.Binary:
		return appendBinary(b, a.Value(i)), nil
	case *array.LargeBinary:
		return appendBinary(b, a.Value(i)), nil
	case *array.BinaryView:
		return appendBinary(b, a.Value(i)), nil
	case *array.FixedSizeBinary:
		return appendBinary(b, a.Value(i)), nil
	case *array.Date32:
		return append(b, `"`+a.Value(i).ToTime().Format(time.DateOnly)+`"`...), nil
	case *array.Date64:
		return append(b, `"`+a.Value(i).ToTime().Format(time.DateOnly)+`"`...), nil
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return strconv.AppendInt(b, toMillis(int64(a.Value(i)), unit), 10), nil
	case *array.Duration:
		unit := a.DataType().(*arrow.DurationType).Unit
		return strconv.AppendInt(b, toMillis(int64(a.Value(i)), unit), 10), nil
	case *array.Struct:
		st := a.DataType().(*arrow.StructType)
		b = append(b, '{')
		n := 0
		for j := range a.NumField() {
			f := a.Field(j)
			if f.IsNull(i) {
				continue
			}
			if n > 0 {
				b = append(b, ',')
			}
			n++
			b, _ = jsonstr.Append(b, st.Field(j).Name)
			b = append(b, ':')
			var err error
			if b, err = refAppendValue(b, f, i); err != nil {
				return b, fmt.Errorf("%s: %w", st.Field(j).Name, err)
			}
		}
		return append(b, '}'), nil
	case *array.Map: // before ListLike: a Map is also a list
		keys, items := a.Keys(), a.Items()
		start, end := a.ValueOffsets(i)
		b = append(b, '{')
		n := 0
		for k := int(start); k < int(end); k++ {
			if items.IsNull(k) {
				continue
			}
			if n > 0 {
				b = append(b, ',')
			}
			n++
			if ks, isStr := keys.(*array.String); isStr {
				if b, ok = jsonstr.Append(b, ks.Value(k)); !ok {
					return b, errInvalidUTF8
				}
			} else {
				b, _ = jsonstr.Append(b, keys.ValueStr(k))
			}
			b = append(b, ':')
			var err error
			if b, err = refAppendValue(b, items, k); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	case array.ListLike:
		start, end := a.ValueOffsets(i)
		vals := a.ListValues()
		b = append(b, '[')
		for k := int(start); k < int(end); k++ {
			if k > int(start) {
				b = append(b, ',')
			}
			var err error
			if b, err = refAppendValue(b, vals, k); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case *array.Dictionary:
		return refAppendValue(b, a.Dictionary(), a.GetValueIndex(i))
	case array.ExtensionArray:
		return refAppendValue(b, a.Storage(), i)
	}
	switch a.DataType().ID() {
	case arrow.DECIMAL32, arrow.DECIMAL64, arrow.DECIMAL128, arrow.DECIMAL256:
		return append(b, a.ValueStr(i)...), nil
	case arrow.TIME32, arrow.TIME64:
		b, _ = jsonstr.Append(b, a.ValueStr(i))
		return b, nil
	}
	v, err := json.Marshal(a.GetOneForMarshal(i))
	if err != nil {
		return b, err
	}
	return append(b, v...), nil
}
