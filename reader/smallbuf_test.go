package reader_test

import (
	"context"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/reader"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
)

// An object's listed size only sizes the read buffer: a size far below the
// real one (the object grew after listing) still yields every record,
// including lines longer than the buffer, with the same positions.
func TestListedSizeOnlySizesTheBuffer(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	long := `{"event_type":"e","device_id":"d","event_properties":{"text":"` + strings.Repeat("x", 70000) + `"}}`
	data := `{"event_type":"a","device_id":"d"}` + "\n" + long + "\n" + `{"event_type":"b","device_id":"d"}` + "\n"
	if err := b.WriteAll(ctx, "grew.jsonl", []byte(data), nil); err != nil {
		t.Fatal(err)
	}
	r, err := reader.New(reader.Options{
		MaxRecordBytes: 1 << 20,
		OpenBucket:     func(context.Context, string) (*blob.Bucket, error) { return b, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, size := range []int64{0, 40, int64(len(data))} {
		got := readObject(t, r, reader.Object{URL: "mem://b/grew.jsonl", Key: "grew.jsonl", Size: size}, reader.Start{})
		if len(got.recs) != 3 || len(got.bad) != 0 || got.objErr != nil {
			t.Fatalf("size %d: %d records, %d bad, object error %v", size, len(got.recs), len(got.bad), got.objErr)
		}
		if string(got.recs[1].Data) != long || got.recs[2].Pos.Offset != int64(len(data)-len(`{"event_type":"b","device_id":"d"}`)-1) {
			t.Fatalf("size %d: record 1 %d bytes, record 2 at %+v", size, len(got.recs[1].Data), got.recs[2].Pos)
		}
	}
}
