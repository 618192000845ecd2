package reader_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/backfillhq/backfill/reader"
)

// fuzzDecode decodes data as an object named name from an in-memory bucket
// and checks the decoder invariants: it ends, record indexes are dense,
// offsets and lines increase, every record is one JSON object, and resuming
// at a record from its position yields the same tail.
func fuzzDecode(t *testing.T, name string, data []byte) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	if err := b.WriteAll(ctx, name, data, nil); err != nil {
		t.Fatal(err)
	}
	// An Object built by hand: the reader derives the bucket URL
	// ("mem://fuzz") from obj.URL and opens it through the hook.
	r, err := reader.New(reader.Options{
		MaxRecordBytes: 4096,
		OpenBucket:     func(context.Context, string) (*blob.Bucket, error) { return b, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	obj := reader.Object{URL: "mem://fuzz/" + name, Key: name}
	full := readObject(t, r, obj, reader.Start{})
	var prev int64 = -1
	var prevLine int64
	for k, p := range full.all {
		if p.Record != int64(k) || p.Object != obj.URL {
			t.Fatalf("position %d: %+v", k, p)
		}
		if p.Offset <= prev || p.Line < prevLine || p.Line < 1 {
			t.Fatalf("position %d: %+v after offset %d line %d", k, p, prev, prevLine)
		}
		prev, prevLine = p.Offset, p.Line
	}
	for _, rec := range full.recs {
		if len(rec.Data) == 0 || rec.Data[0] != '{' || !json.Valid(rec.Data) {
			t.Fatalf("record %d is not a JSON object: %q", rec.Pos.Record, rec.Data)
		}
	}
	for _, e := range full.bad {
		if e.Reason == "" {
			t.Fatalf("record error without a reason: %+v", e)
		}
	}
	if full.objErr != nil && full.objErr.Record != int64(len(full.all)) {
		t.Fatalf("object error %+v after %d records", full.objErr, len(full.all))
	}
	for _, k := range []int{1, len(full.all) / 2, len(full.all) - 1} {
		if k <= 0 || k >= len(full.all) {
			continue
		}
		tail := readObject(t, r, obj, reader.StartAt(full.all[k]))
		if got, want := fmt.Sprint(tail.all), fmt.Sprint(full.all[k:]); got != want {
			t.Fatalf("resume at %+v:\n got %v\nwant %v", full.all[k], got, want)
		}
		if (tail.objErr == nil) != (full.objErr == nil) {
			t.Fatalf("resume at %d: object error %v, full read %v", k, tail.objErr, full.objErr)
		}
		for j, rec := range tail.recs {
			if !bytes.Equal(rec.Data, full.recs[len(full.recs)-len(tail.recs)+j].Data) {
				t.Fatalf("resume at %d: record data differs", k)
			}
		}
	}
}

func FuzzJSONLines(f *testing.F) {
	for _, s := range []string{
		"{\"a\":1}\n{\"b\":[1,2,{\"c\":null}]}\n",
		"\ufeff{\"a\":1}\r\n\n\n{\"a\":\"\\u00e9\"}",
		"{\"a\":\n[1]\n\"x\"\n{} {}\n{\"\xff\":1}\n",
		"",
		"\n\n\n",
		"{\"a\":\"" + string(bytes.Repeat([]byte("x"), 5000)) + "\"}\n{}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, "f.jsonl", data) })
}

func FuzzJSONArray(f *testing.F) {
	for _, s := range []string{
		"[{\"a\":1},{\"b\":[1,2,{\"c\":\"]\"}]}]",
		" [\n {\"a\":1} ,\n 2, \"s\", null, {\"a\":} , [1] ]  ",
		"[]",
		"[",
		"[{\"a\":1}",
		"[{\"a\":[1}]",
		"[{\"a\":1},]",
		"[{\"a\":1}] x",
		"[{\"a\":\"\\\"}\"}, {\"b\":\"\\\\\"}]",
		"{\"a\":1}\n{\"a\":2}\n", // sniffed as JSON lines
		"[{\"a\":\"" + string(bytes.Repeat([]byte("x"), 5000)) + "\"}, {}]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, "f.json", data) })
}

func FuzzCSV(f *testing.F) {
	for _, s := range []string{
		"a,b.c,b.d\n1,2,3\n,,\n\"x\ny\",\"q\"\"q\",z\n",
		"a,b\n1\n1,2,3\n1,\"2\n",
		"a,b\n1,x\"y\n\n\n2,3\n",
		"a,a\n1,2\n",
		"",
		"a\n\xff\n",
		"\ufeffa;b\r\n1;2\r\n",
		"a,b\n\"" + string(bytes.Repeat([]byte("x\n"), 3000)) + "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, "f.csv", data) })
}
