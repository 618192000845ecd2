package reader_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/reader"
)

func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "a.jsonl"), []byte("{\"event_type\":\"a\"}\nnot json\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.csv"), []byte("event_type,event_properties.n\nb,1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "_SUCCESS"), nil, 0o644)

	ctx := context.Background()
	r, err := reader.New(reader.Options{ColumnTypes: map[string]string{"event_properties.n": reader.ColumnInt}})
	if err != nil {
		panic(err)
	}
	defer r.Close()
	l := r.List(ctx, []string{dir})
	for {
		obj, err := l.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		d, err := r.Open(ctx, obj, reader.Start{})
		if err != nil {
			panic(err)
		}
		for {
			rec, err := d.Next(ctx)
			var re *backfill.RecordError
			if err == io.EOF {
				break
			} else if errors.As(err, &re) {
				fmt.Printf("%s line %d: %s\n", filepath.Base(obj.Key), re.Pos.Line, re.Reason)
				continue
			} else if err != nil {
				panic(err) // an *backfill.ObjectError: report the object, move on
			}
			fmt.Printf("%s record %d: %s\n", filepath.Base(obj.Key), rec.Pos.Record, rec.Data)
		}
		d.Close()
	}
	// Output:
	// a.jsonl record 0: {"event_type":"a"}
	// a.jsonl line 2: not a JSON object (starts with 'n')
	// b.csv record 0: {"event_type":"b","event_properties":{"n":1}}
}
