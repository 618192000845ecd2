package reader_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/backfillhq/backfill/fixtures"
	"github.com/backfillhq/backfill/fixtures/fixturegen"
	"github.com/backfillhq/backfill/reader"
)

// writeDictParquet writes rows of low-cardinality strings (nulls, escapes,
// invalid UTF-8) at the top level, in a nullable struct, a list and a map,
// and a high-cardinality column whose small dictionary limit makes the
// writer fall back to plain pages.
func writeDictParquet(t *testing.T, path string, rows, rowGroup int) {
	t.Helper()
	str := func(name string) arrow.Field {
		return arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: true}
	}
	schema := arrow.NewSchema([]arrow.Field{
		str("s"),
		{Name: "req", Type: arrow.BinaryTypes.String},
		{Name: "st", Nullable: true, Type: arrow.StructOf(str("a"), arrow.Field{Name: "n", Type: arrow.PrimitiveTypes.Int64})},
		{Name: "l", Nullable: true, Type: arrow.ListOf(arrow.BinaryTypes.String)},
		{Name: "m", Nullable: true, Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.BinaryTypes.String)},
		str("hi"),
	}, nil)
	words := []string{"free", "pro", "q\"b\\", "a\nb", "élite ✨", "bad\xff", ""}
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i := range rows {
		w := words[i*7%len(words)]
		if i%5 == 0 {
			b.Field(0).AppendNull()
		} else {
			b.Field(0).(*array.StringBuilder).Append(w)
		}
		b.Field(1).(*array.StringBuilder).Append(words[i%3])
		sb := b.Field(2).(*array.StructBuilder)
		if i%6 == 1 {
			sb.AppendNull()
		} else {
			sb.Append(true)
			if i%4 == 0 {
				sb.FieldBuilder(0).AppendNull()
			} else {
				sb.FieldBuilder(0).(*array.StringBuilder).Append(words[i%4])
			}
			sb.FieldBuilder(1).(*array.Int64Builder).Append(int64(i))
		}
		lb := b.Field(3).(*array.ListBuilder)
		lb.Append(true)
		for k := range i % 3 {
			lb.ValueBuilder().(*array.StringBuilder).Append(words[k])
		}
		mb := b.Field(4).(*array.MapBuilder)
		mb.Append(true)
		for k := range i % 2 {
			mb.KeyBuilder().(*array.StringBuilder).Append(words[k+1])
			mb.ItemBuilder().(*array.StringBuilder).Append(words[i%4])
		}
		b.Field(5).(*array.StringBuilder).Append(fmt.Sprintf("id-%06d-%s", i*7919, words[i%2]))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithMaxRowGroupLength(int64(rowGroup)), parquet.WithDictionaryDefault(true),
		parquet.WithDictionaryPageSizeLimit(256), parquet.WithDataPageSize(128), parquet.WithBatchSize(8))
	w, err := pqarrow.NewFileWriter(schema, f, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestParquetDictReadSameOutput checks that reading small-dictionary
// string columns as Arrow dictionaries changes nothing: records, record
// errors and positions are those of a plain read, from the start and when
// resuming, with several batch lengths.
func TestParquetDictReadSameOutput(t *testing.T) {
	dir := t.TempDir()
	paths := []string{filepath.Join(dir, "dict.parquet"), filepath.Join(dir, "dict1.parquet"), filepath.Join(dir, "rg5.parquet"), filepath.Join(dir, "events.parquet")}
	writeDictParquet(t, paths[0], 300, 64)
	writeDictParquet(t, paths[1], 50, 1000)
	if err := fixturegen.WriteFile(paths[2], fixturegen.Options{N: 57, Seed: 7, RowGroupRows: 5}); err != nil {
		t.Fatal(err)
	}
	ev, err := fs.ReadFile(fixtures.FS, "formats/events.parquet")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, paths[3], ev)
	if p := filepath.Join(benchDataDir, "events-v1-d50000-20000.parquet"); !testing.Short() {
		if _, err := os.Stat(p); err == nil {
			paths = append(paths, p)
		}
	}
	f, err := os.Open(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	pf, err := file.NewParquetReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if cols := reader.SmallDictColumns(pf); len(cols) != 3 { // s, req, st.a; not hi, l, m
		t.Errorf("columns read as dictionaries: %v, want 3 of them", cols)
	}
	pf.Close()
	f.Close()

	render := func(res result) string {
		var buf bytes.Buffer
		for _, r := range res.recs {
			fmt.Fprintf(&buf, "%+v %s\n", r.Pos, r.Data)
		}
		for _, e := range res.bad {
			fmt.Fprintf(&buf, "bad %+v %s\n", e.Pos, e.Reason)
		}
		fmt.Fprintf(&buf, "object error %v\n", res.objErr)
		return buf.String()
	}
	saved := *reader.MaxReadDictPage
	defer func() { *reader.MaxReadDictPage = saved }()
	for k, path := range paths {
		batches := []int{3, 1024}
		if k >= 4 { // the bench dataset: 20,000 rows
			batches = batches[1:]
		}
		for _, batch := range batches {
			for _, start := range []int64{0, 4, 70} {
				read := func(limit int64) string {
					*reader.MaxReadDictPage = limit
					r := newReader(t, reader.Options{ParquetBatchRows: batch})
					return render(readObject(t, r, localObject(t, r, path), reader.Start{Record: start}))
				}
				plain, dict := read(-1), read(saved)
				if plain != dict {
					t.Fatalf("%s batch %d start %d:\nplain:\n%s\ndictionary:\n%s", filepath.Base(path), batch, start, plain, dict)
				}
			}
		}
	}
}
