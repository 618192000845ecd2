package reader_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/fixtures/fixturegen"
	"github.com/backfillhq/backfill/reader"
)

// badRecord describes one expected RecordError.
type badRecord struct {
	record, line int64
	reason       string // substring
}

func TestDecodeCases(t *testing.T) {
	gzipped := gzipBytes(t, []byte(strings.Repeat("{\"a\":1}\n", 2000)))
	tests := []struct {
		name    string
		file    string
		content []byte
		opts    reader.Options
		want    []string // Data of the good records, compact
		bad     []badRecord
		objErr  string // substring of the ObjectError; "" = none
		isErr   error  // errors.Is target for the ObjectError
	}{
		{
			name: "JSONLinesBlankCRLFAndBOM", file: "a.jsonl",
			content: []byte("\ufeff{\"a\":1}\r\n\n  \n\t{\"a\":2}  \n{\"a\":3}"),
			want:    []string{`{"a":1}`, `{"a":2}`, `{"a":3}`},
		},
		{
			name: "JSONLinesMalformed", file: "a.jsonl",
			content: []byte("{\"a\":1}\n{\"a\":\n\n[1,2]\n\"s\"\n{\"a\":1} x\n{\"b\":\"\xff\"}\n{\"a\":4}\n"),
			want:    []string{`{"a":1}`, `{"a":4}`},
			bad: []badRecord{
				{1, 2, "invalid JSON"}, {2, 4, "not a JSON object (starts with '[')"},
				{3, 5, "not a JSON object"}, {4, 6, "invalid JSON"}, {5, 7, "invalid UTF-8"},
			},
		},
		{
			name: "JSONLinesTooLong", file: "a.jsonl",
			content: []byte("{\"a\":1}\n{\"a\":\"" + strings.Repeat("x", 100) + "\"}\n{\"a\":2}\n"),
			opts:    reader.Options{MaxRecordBytes: 50},
			want:    []string{`{"a":1}`, `{"a":2}`},
			bad:     []badRecord{{1, 2, "longer than 50 bytes"}},
		},
		{
			name: "JSONLinesLongerThanBuffer", file: "a.jsonl",
			content: []byte("{\"a\":\"" + strings.Repeat("y", 300_000) + "\"}\n{\"a\":2}\n"),
			want:    []string{`{"a":"` + strings.Repeat("y", 300_000) + `"}`, `{"a":2}`},
		},
		{
			name: "TruncatedGzip", file: "a.jsonl.gz", content: gzipped[:len(gzipped)/2],
			objErr: "unexpected EOF", isErr: io.ErrUnexpectedEOF,
		},
		{
			name: "CorruptGzipHeader", file: "a.jsonl.gz", content: []byte{0x1f, 0x8b, 0, 0},
			objErr: "gzip", isErr: reader.ErrMalformed,
		},
		{
			name: "CorruptZstd", file: "a.jsonl.zst", content: append([]byte{0x28, 0xb5, 0x2f, 0xfd}, bytes.Repeat([]byte{0xff}, 64)...),
			objErr: "", isErr: nil, // checked below: some object error
		},
		{
			name: "GzipNamedPlain", file: "a.jsonl", content: gzipBytes(t, []byte("{\"a\":1}\n")),
			want: []string{`{"a":1}`},
		},
		{
			name: "PlainNamedZst", file: "a.jsonl.zst", content: []byte("{\"a\":1}\n"),
			want: []string{`{"a":1}`},
		},
		{
			name: "JSONSniffsLines", file: "a.json", content: []byte("\n  {\"a\":1}\n{\"a\":2}\n"),
			want: []string{`{"a":1}`, `{"a":2}`},
		},
		{
			name: "JSONArrayElements", file: "a.json",
			content: []byte("\ufeff [\n{\"a\":1},\n 2,\n \"x\", {\"a\":}, {\"b\":\"\xff\"},\n  {\"a\":\n3}, null, [1] ]\n"),
			want:    []string{`{"a":1}`, `{"a":3}`},
			bad: []badRecord{
				{1, 3, "not a JSON object"}, {2, 4, "not a JSON object"}, {3, 4, "invalid JSON"},
				{4, 4, "invalid UTF-8"}, {6, 6, "not a JSON object"}, {7, 6, "not a JSON object"},
			},
		},
		{
			name: "JSONArrayEmpty", file: "a.json", content: []byte(" [ ] "),
		},
		{
			name: "JSONArrayEmptyFile", file: "a.json", content: []byte(""),
		},
		{
			name: "JSONArrayTruncated", file: "a.json", content: []byte("[{\"a\":1},{\"a\":2},{\"a\":"),
			want:   []string{`{"a":1}`, `{"a":2}`},
			objErr: "unexpected end of input in the element starting at line 1", isErr: reader.ErrMalformed,
		},
		{
			name: "JSONArrayMissingBracket", file: "a.json", content: []byte("[{\"a\":1}\n"),
			want:   []string{`{"a":1}`},
			objErr: "before ']'", isErr: reader.ErrMalformed,
		},
		{
			name: "JSONArrayMismatched", file: "a.json", content: []byte("[{\"a\":1},\n{\"a\":[1}, {\"a\":2}]"),
			want:   []string{`{"a":1}`},
			objErr: "line 2", isErr: reader.ErrMalformed,
		},
		{
			name: "JSONArrayMissingComma", file: "a.json", content: []byte("[{\"a\":1} {\"a\":2}]"),
			want:   []string{`{"a":1}`},
			objErr: "expected ',' or ']'", isErr: reader.ErrMalformed,
		},
		{
			name: "JSONArrayTrailingData", file: "a.json", content: []byte("[{\"a\":1}] x"),
			want:   []string{`{"a":1}`},
			objErr: "after the closing ']'", isErr: reader.ErrMalformed,
		},
		{
			name: "JSONArrayTrailingComma", file: "a.json", content: []byte("[{\"a\":1},]"),
			want:   []string{`{"a":1}`},
			objErr: "trailing ','", isErr: reader.ErrMalformed,
		},
		{
			name: "JSONArrayTooLong", file: "a.json",
			content: []byte(`[{"a":"` + strings.Repeat("z", 100) + `"}, {"a":2}]`),
			opts:    reader.Options{MaxRecordBytes: 50},
			want:    []string{`{"a":2}`},
			bad:     []badRecord{{0, 1, "longer than 50 bytes"}},
		},
		{
			name: "JSONArrayForced", file: "data.txt", content: []byte(`[{"a":1}]`),
			opts: reader.Options{Format: reader.FormatJSONArray},
			want: []string{`{"a":1}`},
		},
		{
			name: "CSVNestedTypedAndEmpty", file: "a.csv",
			content: []byte("\ufeffid,n,f,b,j,p.x,p.y,p.q.z\n" +
				"1,2,1.50,true,\"{\"\"k\"\":[1]}\",x,,\n" +
				"2,,,,,,,\n" +
				"3, -4 ,1e30,0,null,,\"a,b\",\"multi\nline\"\n"),
			opts: reader.Options{ColumnTypes: map[string]string{"n": "int", "f": "float", "b": "bool", "j": "json"}},
			want: []string{
				`{"id":"1","n":2,"f":1.5,"b":true,"j":{"k":[1]},"p":{"x":"x"}}`,
				`{"id":"2"}`,
				`{"id":"3","n":-4,"f":1e+30,"b":false,"j":null,"p":{"y":"a,b","q":{"z":"multi\nline"}}}`,
			},
		},
		{
			name: "CSVBadRows", file: "a.csv",
			content: []byte("a,b,c,d,e,f,g\n1,2,3,4,5,6,7\n1,2,3,4,5\n\"q\nq\",2,3,4,5,6,x\"y\n1,2,3,4,5,6,\xff\nx,notint,3,4,5,6,7\n"),
			opts:    reader.Options{ColumnTypes: map[string]string{"b": "int"}},
			want:    []string{`{"a":"1","b":2,"c":"3","d":"4","e":"5","f":"6","g":"7"}`},
			bad: []badRecord{
				{1, 3, "row has 5 fields, header has 7"}, {2, 4, "bare \" in non-quoted-field"},
				{3, 6, `invalid UTF-8 in column "g"`}, {4, 7, `column "b": "notint" is not an int`},
			},
		},
		{
			name: "CSVSemicolon", file: "a.csv", content: []byte("a;b\n1;2\n"),
			opts: reader.Options{Delimiter: ';'},
			want: []string{`{"a":"1","b":"2"}`},
		},
		{
			name: "TSVLazyQuotes", file: "a.tsv", content: []byte("a\tb\nsay \"hi\"\t2\n"),
			want: []string{`{"a":"say \"hi\"","b":"2"}`},
		},
		{
			name: "CSVHeaderOnly", file: "a.csv", content: []byte("a,b\n"),
		},
		{
			name: "CSVEmpty", file: "a.csv", content: nil,
		},
		{
			name: "CSVHeaderClash", file: "a.csv", content: []byte("a,a.b\n1,2\n"),
			objErr: "clashes", isErr: reader.ErrMalformed,
		},
		{
			name: "CSVDuplicateHeader", file: "a.csv", content: []byte("a,a\n1,2\n"),
			objErr: "clashes", isErr: reader.ErrMalformed,
		},
		{
			name: "CSVUnterminatedQuote", file: "a.csv",
			content: []byte("a,b\n1,2\n\"" + strings.Repeat("x\n", 200)),
			opts:    reader.Options{MaxRecordBytes: 100},
			want:    []string{`{"a":"1","b":"2"}`},
			objErr:  "longer than 100 bytes", isErr: reader.ErrRecordTooLarge,
		},
		{
			name: "CorruptParquetFooter", file: "a.parquet", content: []byte("PAR1 this is not parquet PAR1"),
			objErr: "parquet", isErr: reader.ErrMalformed,
		},
		{
			name: "UnknownFormat", file: "a.txt", content: []byte("{}"),
			objErr: "format", isErr: reader.ErrUnknownFormat,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir+"/"+tt.file, tt.content)
			r := newReader(t, tt.opts)
			res := readObject(t, r, localObject(t, r, dir+"/"+tt.file), reader.Start{})
			var got []string
			for _, rec := range res.recs {
				got = append(got, string(compact(t, rec.Data)))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("records:\n got %q\nwant %q", got, tt.want)
			}
			if len(res.bad) != len(tt.bad) {
				t.Fatalf("record errors %v, want %d", res.bad, len(tt.bad))
			}
			for i, b := range tt.bad {
				e := res.bad[i]
				if e.Pos.Record != b.record || e.Pos.Line != b.line || !strings.Contains(e.Reason, b.reason) {
					t.Errorf("record error %d = %+v %q, want record %d line %d reason %q", i, e.Pos, e.Reason, b.record, b.line, b.reason)
				}
				if !strings.Contains(e.Error(), "line") {
					t.Errorf("error %q does not name the line", e.Error())
				}
			}
			switch {
			case tt.name == "CorruptZstd":
				if res.objErr == nil {
					t.Fatal("no object error for corrupt zstd")
				}
			case tt.objErr == "" && res.objErr != nil:
				t.Fatalf("object error %v", res.objErr)
			case tt.objErr != "":
				if res.objErr == nil {
					t.Fatalf("no object error, want %q", tt.objErr)
				}
				if !strings.Contains(res.objErr.Error(), tt.objErr) || tt.isErr != nil && !errors.Is(res.objErr, tt.isErr) {
					t.Fatalf("object error %v, want %q / %v", res.objErr, tt.objErr, tt.isErr)
				}
				if res.objErr.Object == "" || res.objErr.Record != int64(len(res.all)) {
					t.Fatalf("object error %+v after %d records", res.objErr, len(res.all))
				}
			}
		})
	}
}

func TestVanishedObject(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.jsonl", "a.parquet"} {
		t.Run(name, func(t *testing.T) {
			writeFile(t, dir+"/"+name, []byte("{}\n"))
			r := newReader(t, reader.Options{})
			obj := localObject(t, r, dir+"/"+name)
			os.Remove(dir + "/" + name)
			res := readObject(t, r, obj, reader.Start{})
			if res.objErr == nil || !errors.Is(res.objErr, reader.ErrNotFound) || !errors.Is(res.objErr, os.ErrNotExist) {
				t.Fatalf("object error = %v, want ErrNotFound", res.objErr)
			}
		})
	}
}

func TestParquetProjection(t *testing.T) {
	dir := t.TempDir()
	if err := fixturegen.WriteFile(dir+"/e.parquet", fixturegen.Options{N: 10}); err != nil {
		t.Fatal(err)
	}
	r := newReader(t, reader.Options{Columns: []string{"event_properties", "time"}})
	res := readObject(t, r, localObject(t, r, dir+"/e.parquet"), reader.Start{Record: 8})
	if len(res.recs) != 2 {
		t.Fatalf("got %d records", len(res.recs))
	}
	var full map[string]json.RawMessage
	if err := json.Unmarshal(expectedEvents(10, 0)[8], &full); err != nil {
		t.Fatal(err)
	}
	want := `{"time":` + string(full["time"]) + `,"event_properties":` + string(full["event_properties"]) + `}`
	if got := string(res.recs[0].Data); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	r = newReader(t, reader.Options{Columns: []string{"nope"}})
	res = readObject(t, r, localObject(t, r, dir+"/e.parquet"), reader.Start{})
	if res.objErr == nil || !strings.Contains(res.objErr.Error(), `column "nope"`) {
		t.Fatalf("object error = %v", res.objErr)
	}
}

func TestOpenErrors(t *testing.T) {
	r := newReader(t, reader.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Open(ctx, reader.Object{URL: "file:///x.jsonl", Key: "/x.jsonl"}, reader.Start{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with cancelled ctx = %v", err)
	}
	if _, err := r.Open(context.Background(), reader.Object{}, reader.Start{}); err == nil {
		t.Fatal("Open of an empty object succeeded")
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		opts reader.Options
	}{
		{"BadFormat", reader.Options{Format: "xml"}},
		{"BadColumnType", reader.Options{ColumnTypes: map[string]string{"a": "date"}}},
		{"BadDelimiter", reader.Options{Delimiter: '"'}},
		{"NegativeSize", reader.Options{MaxRecordBytes: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := reader.New(tt.opts); err == nil {
				t.Fatal("New succeeded")
			}
		})
	}
}

func TestCancelledNext(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/a.jsonl", []byte("{}\n{}\n"))
	r := newReader(t, reader.Options{})
	d, err := r.Open(context.Background(), localObject(t, r, dir+"/a.jsonl"), reader.Start{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next = %v, want context.Canceled", err)
	}
	var oe *backfill.ObjectError
	if _, err := d.Next(context.Background()); err != nil || errors.As(err, &oe) {
		t.Fatalf("Next after a cancelled call = %v", err)
	}
}

// With DeferJSONCheck, JSON-lines records are framed and checked for UTF-8
// and a leading '{' only; the syntax check is the consumer's, flagged by
// Record.Unchecked. JSON arrays still check their elements.
func TestDeferJSONCheck(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/a.jsonl", []byte("{\"a\":1}\n{\"a\":\n\n[1,2]\n{\"b\":\"\xff\"}\n{\"a\":4}\n"))
	writeFile(t, dir+"/b.json", []byte(`[{"a":1},{"a":},{"a":2}]`))
	r := newReader(t, reader.Options{DeferJSONCheck: true})
	res := readObject(t, r, localObject(t, r, dir+"/a.jsonl"), reader.Start{})
	var got []string
	for _, rec := range res.recs {
		if !rec.Unchecked {
			t.Errorf("record %d is not flagged Unchecked", rec.Pos.Record)
		}
		got = append(got, fmt.Sprintf("%d:%s", rec.Pos.Line, rec.Data))
	}
	if want := []string{`1:{"a":1}`, `2:{"a":`, `6:{"a":4}`}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("records %q, want %q", got, want)
	}
	if len(res.bad) != 2 || !strings.Contains(res.bad[0].Reason, "not a JSON object") || !strings.Contains(res.bad[1].Reason, "invalid UTF-8") {
		t.Fatalf("record errors %v", res.bad)
	}
	res = readObject(t, r, localObject(t, r, dir+"/b.json"), reader.Start{})
	if len(res.recs) != 2 || res.recs[0].Unchecked || len(res.bad) != 1 || !strings.Contains(res.bad[0].Reason, "invalid JSON") {
		t.Fatalf("JSON array: records %v, errors %v", res.recs, res.bad)
	}
}
