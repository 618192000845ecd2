package reader_test

import (
	"math"
	"os"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/backfillhq/backfill/reader"
)

// TestParquetTypes checks the JSON rendering of Parquet types.
func TestParquetTypes(t *testing.T) {
	point := arrow.StructOf(
		arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		arrow.Field{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "ts_ms", Type: &arrow.TimestampType{Unit: arrow.Millisecond}, Nullable: true},
		{Name: "ts_us", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "ts_ns", Type: &arrow.TimestampType{Unit: arrow.Nanosecond}, Nullable: true},
		{Name: "day", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "bin", Type: arrow.BinaryTypes.Binary, Nullable: true},
		{Name: "dec", Type: &arrow.Decimal128Type{Precision: 10, Scale: 2}, Nullable: true},
		{Name: "m", Type: arrow.MapOf(arrow.PrimitiveTypes.Int32, arrow.BinaryTypes.String), Nullable: true},
		{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64), Nullable: true},
		{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "u8", Type: arrow.PrimitiveTypes.Uint8, Nullable: true},
		{Name: "pts", Type: arrow.ListOf(point), Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	// Row 0: values everywhere.
	b.Field(0).(*array.TimestampBuilder).Append(1704067200123)
	b.Field(1).(*array.TimestampBuilder).Append(1704067200123456)
	b.Field(2).(*array.TimestampBuilder).Append(-1_500_000) // -1.5 ms
	b.Field(3).(*array.Date32Builder).Append(arrow.Date32FromTime(mustTime(t, "2024-02-29")))
	b.Field(4).(*array.BinaryBuilder).Append([]byte("hi"))
	b.Field(5).(*array.Decimal128Builder).Append(decimal128.FromI64(12345))
	mb := b.Field(6).(*array.MapBuilder)
	mb.Append(true)
	mb.KeyBuilder().(*array.Int32Builder).AppendValues([]int32{1, 2}, nil)
	mb.ItemBuilder().(*array.StringBuilder).Append("one")
	mb.ItemBuilder().(*array.StringBuilder).AppendNull()
	lb := b.Field(7).(*array.ListBuilder)
	lb.Append(true)
	lb.ValueBuilder().(*array.Int64Builder).AppendValues([]int64{1, 0, 3}, []bool{true, false, true})
	b.Field(8).(*array.Float64Builder).Append(math.NaN())
	b.Field(9).(*array.Float32Builder).Append(1.5)
	b.Field(10).(*array.BooleanBuilder).Append(false)
	b.Field(11).(*array.Uint8Builder).Append(255)
	pl := b.Field(12).(*array.ListBuilder)
	pl.Append(true)
	ps := pl.ValueBuilder().(*array.StructBuilder)
	ps.Append(true)
	ps.FieldBuilder(0).(*array.Int32Builder).Append(7)
	ps.FieldBuilder(1).(*array.ListBuilder).AppendNull()
	ps.Append(true)
	ps.FieldBuilder(0).(*array.Int32Builder).AppendNull()
	ps.FieldBuilder(1).(*array.ListBuilder).Append(true)
	ps.FieldBuilder(1).(*array.ListBuilder).ValueBuilder().(*array.StringBuilder).Append("t\"1")
	b.Field(13).(*array.StringBuilder).Append("é")
	// Row 1: nulls everywhere, binary that is not UTF-8.
	for i := range schema.NumFields() {
		if i == 4 {
			b.Field(i).(*array.BinaryBuilder).Append([]byte{0xff, 0x00})
			continue
		}
		b.Field(i).AppendNull()
	}
	// Row 2: a string column holding invalid UTF-8.
	for i := range schema.NumFields() {
		if i == 13 {
			b.Field(i).(*array.StringBuilder).Append("bad\xff")
			continue
		}
		b.Field(i).AppendNull()
	}
	rec := b.NewRecordBatch()
	defer rec.Release()

	path := t.TempDir() + "/types.parquet"
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(schema, f, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	r := newReader(t, reader.Options{})
	res := readObject(t, r, localObject(t, r, path), reader.Start{})
	want := []string{
		`{"ts_ms":1704067200123,"ts_us":1704067200123,"ts_ns":-2,"day":"2024-02-29","bin":"hi","dec":123.45,` +
			`"m":{"1":"one"},"l":[1,null,3],"f":null,"f32":1.5,"ok":false,"u8":255,"pts":[{"x":7},{"tags":["t\"1"]}],"s":"é"}`,
		`{"bin":"/wA="}`,
	}
	if len(res.recs) != len(want) || res.objErr != nil {
		t.Fatalf("records %d, object error %v", len(res.recs), res.objErr)
	}
	for i, w := range want {
		if got := string(res.recs[i].Data); got != w {
			t.Errorf("row %d:\n got %s\nwant %s", i, got, w)
		}
	}
	if len(res.bad) != 1 || res.bad[0].Pos.Record != 2 || res.bad[0].Pos.Offset != -1 || res.bad[0].Reason != `column "s": invalid UTF-8 in a string` {
		t.Fatalf("record errors %+v", res.bad)
	}
}

func mustTime(t *testing.T, day string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.DateOnly, day)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}
