package mapping_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/backfillhq/backfill/mapping"
)

// TestPostHogParquet reads a PostHog S3 batch export in Parquet, in the
// events model's documented schema (https://posthog.com/docs/cdp/batch-exports/s3):
// properties and person_properties are JSON-encoded STRINGs, timestamp,
// created_at and _inserted_at microsecond TIMESTAMPs in UTC. The same event
// as JSON lines (properties a nested object, timestamps ISO strings) must
// map to the same Amplitude event.
func TestPostHogParquet(t *testing.T) {
	ts := arrow.FixedWidthTypes.Timestamp_us
	str := arrow.BinaryTypes.String
	f := func(name string, typ arrow.DataType) arrow.Field {
		return arrow.Field{Name: name, Type: typ, Nullable: true}
	}
	schema := arrow.NewSchema([]arrow.Field{
		f("uuid", str), f("event", str), f("distinct_id", str), f("person_id", str),
		f("properties", str), f("person_properties", str), f("elements_chain", str),
		f("timestamp", ts), f("created_at", ts), f("_inserted_at", ts),
	}, nil)
	props := `{"$device_id":"0190a1b2-anon-0001","$lib":"posthog-android","$os_name":"Android","$os_version":"14","revenue":12.5,"currency":"EUR","plan":"team"}`
	when := time.Date(2024, 6, 1, 9, 0, 0, 123456000, time.UTC)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i, v := range []string{"0190a1b2-0000-7000-8000-0000000000f1", "$pageview", "0190a1b2-anon-0001", "0190a1b2-person-1", props, `{"email":"x@example.com"}`, ""} {
		b.Field(i).(*array.StringBuilder).Append(v)
	}
	for i := 7; i < 10; i++ {
		b.Field(i).(*array.TimestampBuilder).Append(arrow.Timestamp(when.Add(time.Duration(i-7) * time.Second).UnixMicro()))
	}
	row := b.NewRecord()
	defer row.Release()
	path := filepath.Join(t.TempDir(), "posthog-events.parquet")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(schema, out, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(row); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out.Close()

	recs := readParquet(t, path)
	if len(recs) != 1 {
		t.Fatalf("read %d records", len(recs))
	}
	m := newMapper(t, mapping.Options{Preset: "posthog", SkipUserPropertiesSync: true})
	pq, err := m.Map(recs[0])
	if err != nil {
		t.Fatalf("parquet row %s: %v", recs[0].Data, err)
	}
	jsonl := `{"uuid":"0190a1b2-0000-7000-8000-0000000000f1","event":"$pageview","distinct_id":"0190a1b2-anon-0001","person_id":"0190a1b2-person-1","properties":` + props +
		`,"person_properties":{"email":"x@example.com"},"elements_chain":"","timestamp":"2024-06-01T09:00:00.123456Z","created_at":"2024-06-01T09:00:01Z","_inserted_at":"2024-06-01T09:00:02Z"}`
	js, err := m.Map(rec(0, jsonl))
	if err != nil {
		t.Fatal(err)
	}
	var a, bb map[string]any
	json.Unmarshal(pq.Raw, &a)
	json.Unmarshal(js.Raw, &bb)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(bb)
	if string(ja) != string(jb) {
		t.Fatalf("parquet and JSON lines differ:\nparquet %s\njsonl   %s", ja, jb)
	}
	for k, want := range map[string]any{"time": float64(when.UnixMilli()), "device_id": "0190a1b2-anon-0001", "platform": "Android",
		"os_name": "Android", "revenue": 12.5, "currency": "EUR", "insert_id": "0190a1b2-0000-7000-8000-0000000000f1"} {
		if a[k] != want {
			t.Errorf("%s = %v, want %v (%s)", k, a[k], want, pq.Raw)
		}
	}
}
