package reader_test

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/fixtures/fixturegen"
	"github.com/backfillhq/backfill/reader"
)

// checkContract checks one object against the reader contract: it decodes
// to want (compared as compact JSON), positions are dense and well formed,
// text offsets and lines point at the record in content (the decompressed
// bytes, nil when unknown), and resuming at every record k, from its
// position and by skipping, yields exactly the tail.
func checkContract(t *testing.T, r *reader.Reader, obj reader.Object, want [][]byte, content []byte) {
	t.Helper()
	full := readObject(t, r, obj, reader.Start{})
	if full.objErr != nil || len(full.bad) > 0 {
		t.Fatalf("%s: object error %v, record errors %v", obj.URL, full.objErr, full.bad)
	}
	if got := len(full.recs); got != len(want) {
		t.Fatalf("%s: %d records, want %d", obj.URL, got, len(want))
	}
	parquet := obj.Format == reader.FormatParquet
	for i, rec := range full.recs {
		if got := compact(t, rec.Data); !bytes.Equal(got, want[i]) {
			t.Fatalf("%s record %d:\n got %s\nwant %s", obj.URL, i, got, want[i])
		}
		p := rec.Pos
		if p.Object != obj.URL || p.Record != int64(i) {
			t.Fatalf("%s record %d: position %+v", obj.URL, i, p)
		}
		if parquet {
			if p.Offset != -1 || p.Line != 0 {
				t.Fatalf("%s record %d: parquet position %+v", obj.URL, i, p)
			}
			if i > 0 {
				q := full.recs[i-1].Pos
				if !(p.RowGroup == q.RowGroup && p.Row == q.Row+1 || p.RowGroup == q.RowGroup+1 && p.Row == 0) {
					t.Fatalf("%s record %d: position %+v after %+v", obj.URL, i, p, q)
				}
			}
			continue
		}
		if p.Line < 1 || p.Offset < 0 || i > 0 && (p.Offset <= full.recs[i-1].Pos.Offset || p.Line <= full.recs[i-1].Pos.Line) {
			t.Fatalf("%s record %d: position %+v", obj.URL, i, p)
		}
		if content != nil {
			if got := int64(bytes.Count(content[:p.Offset], []byte("\n")) + 1); got != p.Line {
				t.Fatalf("%s record %d: offset %d is on line %d, position says %d", obj.URL, i, p.Offset, got, p.Line)
			}
		}
	}
	for k := 0; k <= len(want); k++ {
		starts := []reader.Start{{Record: int64(k)}}
		if k < len(want) {
			starts = append(starts, reader.StartAt(full.recs[k].Pos))
		}
		for _, st := range starts {
			tail := readObject(t, r, obj, st)
			if tail.objErr != nil || len(tail.bad) > 0 {
				t.Fatalf("%s resume %+v: object error %v, record errors %v", obj.URL, st, tail.objErr, tail.bad)
			}
			if len(tail.recs) != len(want)-k {
				t.Fatalf("%s resume %+v: %d records, want %d", obj.URL, st, len(tail.recs), len(want)-k)
			}
			for j, rec := range tail.recs {
				w := full.recs[k+j]
				if rec.Pos != w.Pos || !bytes.Equal(rec.Data, w.Data) {
					t.Fatalf("%s resume %+v record %d:\n got %+v %s\nwant %+v %s", obj.URL, st, k+j, rec.Pos, rec.Data, w.Pos, w.Data)
				}
			}
		}
	}
}

// TestContractFixtures runs the contract over every fixture file: every
// format and compression decodes to the same events and resumes exactly.
func TestContractFixtures(t *testing.T) {
	dir, names := fixtureFiles(t)
	r := newReader(t, reader.Options{ColumnTypes: fixturegen.CSVColumnTypes})
	want := expectedEvents(fixturegen.DefaultN, 1)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			obj := localObject(t, r, dir+"/"+name)
			var content []byte
			if !strings.HasSuffix(name, ".gz") && !strings.HasSuffix(name, ".zst") && !strings.HasSuffix(name, ".parquet") {
				content, _ = os.ReadFile(dir + "/" + name)
			}
			checkContract(t, r, obj, want, content)
		})
	}
}

// TestContractGenerated covers more shapes: Parquet with many row groups,
// compressed CSV and arrays, and misnamed compressed files.
func TestContractGenerated(t *testing.T) {
	dir := t.TempDir()
	const n = 57
	opts := fixturegen.Options{N: n, Seed: 7, RowGroupRows: 5}
	files := map[string]string{ // file name -> generator format
		"rg5.parquet":    "parquet",
		"a.csv.gz":       "csv", // compressed below
		"a.json.zst":     "json",
		"a.tsv":          "tsv",
		"misnamed.jsonl": "jsonl.gz",
		"misnamed2.json": "jsonl.zst",
	}
	for name, f := range files {
		var buf bytes.Buffer
		if err := fixturegen.Write(&buf, f, opts); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		switch {
		case strings.HasSuffix(name, ".gz"):
			b = gzipBytes(t, b)
		case strings.HasSuffix(name, ".zst"):
			b = zstdBytes(t, b)
		}
		writeFile(t, dir+"/"+name, b)
	}
	r := newReader(t, reader.Options{ColumnTypes: fixturegen.CSVColumnTypes, ParquetBatchRows: 3})
	want := expectedEvents(n, 7)
	for name := range files {
		t.Run(name, func(t *testing.T) {
			checkContract(t, r, localObject(t, r, dir+"/"+name), want, nil)
		})
	}
}

// TestResumeAfterBadRecords checks that record indexes count bad records and
// that resuming lands on them exactly.
func TestResumeAfterBadRecords(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"bad.jsonl": "{\"a\":1}\n\nnot json\n{\"a\":2}\r\n[1]\n{\"a\":3}\n",
		"bad.json":  "[{\"a\":1},\n 2, {\"a\":},\n{\"a\":3}]",
		"bad.csv":   "a,b\n1,2\n1,2,3\n\"x\ny\",z\n4\n5,6\n",
	}
	r := newReader(t, reader.Options{})
	for name, content := range files {
		t.Run(name, func(t *testing.T) {
			writeFile(t, dir+"/"+name, []byte(content))
			obj := localObject(t, r, dir+"/"+name)
			full := readObject(t, r, obj, reader.Start{})
			if len(full.bad) == 0 || full.objErr != nil {
				t.Fatalf("bad=%v objErr=%v", full.bad, full.objErr)
			}
			for k, p := range full.all {
				if p.Record != int64(k) {
					t.Fatalf("position %d: %+v", k, p)
				}
				for _, st := range []reader.Start{reader.StartAt(p), {Record: int64(k)}} {
					tail := readObject(t, r, obj, st)
					if got, want := fmt.Sprint(tail.all), fmt.Sprint(full.all[k:]); got != want {
						t.Fatalf("resume %+v:\n got %v\nwant %v", st, got, want)
					}
				}
			}
		})
	}
}

var _ = backfill.Position{}
