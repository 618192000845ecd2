package mapping_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/mapping"
	"github.com/backfillhq/backfill/reader"
)

// ga4Schema is the GA4 BigQuery export schema
// (https://support.google.com/analytics/answer/7029846) as BigQuery writes
// it to Parquet: STRING is a UTF-8 byte array, INTEGER int64, FLOAT double,
// RECORD a struct and REPEATED RECORD a list of structs, every field
// nullable. It holds every column the ga4 fixture uses, each with all of
// its export members, plus a few top-level columns the fixture leaves null.
func ga4Schema() *arrow.Schema {
	str, i64, f64 := arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Float64
	f := func(name string, t arrow.DataType) arrow.Field {
		return arrow.Field{Name: name, Type: t, Nullable: true}
	}
	kvValue := []arrow.Field{f("string_value", str), f("int_value", i64), f("float_value", f64), f("double_value", f64)}
	params := arrow.ListOf(arrow.StructOf(f("key", str), f("value", arrow.StructOf(kvValue...))))
	userProps := arrow.ListOf(arrow.StructOf(f("key", str),
		f("value", arrow.StructOf(append(kvValue[:len(kvValue):len(kvValue)], f("set_timestamp_micros", i64))...))))
	items := arrow.ListOf(arrow.StructOf(
		f("item_id", str), f("item_name", str), f("item_brand", str), f("item_variant", str),
		f("item_category", str), f("item_category2", str), f("item_category3", str),
		f("item_category4", str), f("item_category5", str),
		f("price_in_usd", f64), f("price", f64), f("quantity", i64),
		f("item_revenue_in_usd", f64), f("item_revenue", f64),
		f("item_refund_in_usd", f64), f("item_refund", f64),
		f("coupon", str), f("affiliation", str), f("location_id", str),
		f("item_list_id", str), f("item_list_name", str), f("item_list_index", str),
		f("promotion_id", str), f("promotion_name", str), f("creative_name", str), f("creative_slot", str),
		f("item_params", params),
	))
	return arrow.NewSchema([]arrow.Field{
		f("event_date", str),
		f("event_timestamp", i64),
		f("event_name", str),
		f("event_params", params),
		f("event_previous_timestamp", i64),
		f("event_value_in_usd", f64),
		f("event_bundle_sequence_id", i64),
		f("event_server_timestamp_offset", i64),
		f("user_id", str),
		f("user_pseudo_id", str),
		f("privacy_info", arrow.StructOf(f("analytics_storage", str), f("ads_storage", str), f("uses_transient_token", str))),
		f("user_properties", userProps),
		f("user_first_touch_timestamp", i64),
		f("user_ltv", arrow.StructOf(f("revenue", f64), f("currency", str))),
		f("device", arrow.StructOf(
			f("category", str), f("mobile_brand_name", str), f("mobile_model_name", str),
			f("mobile_marketing_name", str), f("mobile_os_hardware_model", str),
			f("operating_system", str), f("operating_system_version", str),
			f("vendor_id", str), f("advertising_id", str), f("language", str),
			f("is_limited_ad_tracking", str), f("time_zone_offset_seconds", i64),
			f("browser", str), f("browser_version", str),
			f("web_info", arrow.StructOf(f("browser", str), f("browser_version", str), f("hostname", str))),
		)),
		f("geo", arrow.StructOf(f("city", str), f("country", str), f("continent", str),
			f("region", str), f("sub_continent", str), f("metro", str))),
		f("app_info", arrow.StructOf(f("id", str), f("version", str), f("install_store", str),
			f("firebase_app_id", str), f("install_source", str))),
		f("traffic_source", arrow.StructOf(f("name", str), f("medium", str), f("source", str))),
		f("stream_id", str),
		f("platform", str),
		f("event_dimensions", arrow.StructOf(f("hostname", str))),
		f("ecommerce", arrow.StructOf(
			f("total_item_quantity", i64), f("purchase_revenue_in_usd", f64), f("purchase_revenue", f64),
			f("refund_value_in_usd", f64), f("refund_value", f64),
			f("shipping_value_in_usd", f64), f("shipping_value", f64),
			f("tax_value_in_usd", f64), f("tax_value", f64),
			f("unique_items", i64), f("transaction_id", str),
		)),
		f("items", items),
		f("is_active_user", arrow.FixedWidthTypes.Boolean),
		f("batch_event_index", i64),
		f("batch_page_id", i64),
		f("batch_ordering_id", i64),
	}, nil)
}

// checkCovered fails when a non-null member of v has no column in t: the
// arrow JSON decoder silently drops unknown keys, which would make the
// Parquet side of the comparison quietly poorer than the fixture.
func checkCovered(t *testing.T, line int, at string, v any, typ arrow.DataType) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		st, ok := typ.(*arrow.StructType)
		if !ok {
			t.Errorf("line %d: %s is an object, schema has %s", line, at, typ)
			return
		}
		for k, x := range v {
			if x == nil {
				continue
			}
			fld, ok := st.FieldByName(k)
			if !ok {
				t.Errorf("line %d: %s.%s is not in the GA4 Parquet schema", line, at, k)
				continue
			}
			checkCovered(t, line, at+"."+k, x, fld.Type)
		}
	case []any:
		lt, ok := typ.(*arrow.ListType)
		if !ok {
			t.Errorf("line %d: %s is an array, schema has %s", line, at, typ)
			return
		}
		for _, x := range v {
			checkCovered(t, line, at+"[]", x, lt.Elem())
		}
	}
}

// writeGA4Parquet converts the JSON-lines fixture to a Parquet file in the
// GA4 export schema, two rows per row group so reading crosses row groups.
func writeGA4Parquet(t *testing.T, lines [][]byte, path string) {
	t.Helper()
	schema := ga4Schema()
	top := arrow.StructOf(schema.Fields()...)
	for i, l := range lines {
		var obj map[string]any
		if err := json.Unmarshal(l, &obj); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		checkCovered(t, i+1, "$", obj, top)
	}
	// Int64 builders parse the fixture's quoted integers ("1714566700000001",
	// "12"), as BigQuery stores them: INTEGER columns.
	rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, schema,
		bytes.NewReader(bytes.Join(lines, []byte("\n"))), array.WithMultipleDocs())
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	if rec.NumRows() != int64(len(lines)) {
		t.Fatalf("parquet rows %d, fixture lines %d", rec.NumRows(), len(lines))
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// No stored arrow schema: BigQuery's files carry none, so the reader
	// must work from the Parquet schema alone.
	w, err := pqarrow.NewFileWriter(schema, f,
		parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(2)), pqarrow.DefaultWriterProps())
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

// readParquet reads every record of path through the product reader.
func readParquet(t *testing.T, path string) []backfill.Record {
	t.Helper()
	ctx := context.Background()
	r, err := reader.New(reader.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	obj, err := r.List(ctx, []string{path}).Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.Open(ctx, obj, reader.Start{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var recs []backfill.Record
	for {
		rec, err := d.Next(ctx)
		if err == io.EOF {
			return recs
		}
		if err != nil {
			t.Fatalf("parquet record %d: %v", len(recs), err)
		}
		recs = append(recs, rec)
	}
}

// TestGA4ParquetGolden maps the ga4 fixture exported as Parquet with the
// BigQuery GA4 schema, read through the reader, and requires the same events
// and rejections as golden.jsonl. Hashed insert_ids ("bfh-") must match
// byte for byte; position-derived ones ("bf-") depend on the object URL, so
// each side is checked against DeriveInsertID of its own position.
func TestGA4ParquetGolden(t *testing.T) {
	dir := filepath.Join(fixturesDir, "ga4")
	lines := readLines(t, filepath.Join(dir, "input.jsonl"))
	golden := readLines(t, filepath.Join(dir, "golden.jsonl"))
	if len(lines) == 0 || len(golden) != len(lines) {
		t.Fatalf("fixture has %d lines, golden %d", len(lines), len(golden))
	}
	path := filepath.Join(t.TempDir(), "events_20240501.parquet")
	writeGA4Parquet(t, lines, path)
	recs := readParquet(t, path)
	if len(recs) != len(lines) {
		t.Fatalf("read %d parquet records, want %d", len(recs), len(lines))
	}
	m, err := mapping.New(mapping.Options{Preset: "ga4", SkipUserPropertiesSync: true, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	var sawHashed, sawDerived, sawRejected bool
	for i, rec := range recs {
		line := i + 1
		if rec.Pos.Record != int64(i) {
			t.Fatalf("line %d: parquet record index %d", line, rec.Pos.Record)
		}
		var want struct {
			Line  int             `json:"line"`
			Event json.RawMessage `json:"event"`
			goldenErr
		}
		if err := json.Unmarshal(golden[i], &want); err != nil || want.Line != line {
			t.Fatalf("golden line %d: %v %s", line, err, golden[i])
		}
		want.goldenErr.Line = want.Line // shadowed by the outer Line
		ev, err := m.Map(rec)
		if want.Event == nil {
			var me *mapping.Error
			var re *backfill.RecordError
			if !errors.As(err, &me) || !errors.As(err, &re) {
				t.Errorf("line %d: got event %s / error %v, want rejection %s", line, ev.Raw, err, golden[i])
				continue
			}
			got := goldenErr{Line: line, Code: me.Code, Filtered: errors.Is(err, mapping.ErrFiltered), Reason: re.Reason}
			if got != want.goldenErr {
				t.Errorf("line %d: rejection %+v, want %+v", line, got, want.goldenErr)
			}
			sawRejected = true
			continue
		}
		if err != nil {
			t.Errorf("line %d: %v\nparquet row: %s", line, err, rec.Data)
			continue
		}
		checkEvent(t, line, rec, ev)
		var wantID struct {
			InsertID string `json:"insert_id"`
		}
		if err := json.Unmarshal(want.Event, &wantID); err != nil {
			t.Fatal(err)
		}
		wantRaw := []byte(want.Event)
		switch {
		case strings.HasPrefix(wantID.InsertID, "bfh-"):
			sawHashed = true
		case strings.HasPrefix(wantID.InsertID, "bf-"):
			sawDerived = true
			jsonlPos := backfill.Position{Object: "file:///fixtures/presets/ga4/input.jsonl", Record: int64(i)}
			if d := mapping.DeriveInsertID(jsonlPos); d != wantID.InsertID {
				t.Fatalf("line %d: golden insert_id %s is not derived from its position (%s)", line, wantID.InsertID, d)
			}
			if d := mapping.DeriveInsertID(rec.Pos); d != ev.InsertID {
				t.Errorf("line %d: insert_id %s, want %s derived from %s", line, ev.InsertID, d, rec.Pos.Object)
			}
			wantRaw = bytes.Replace(wantRaw, []byte(`"`+wantID.InsertID+`"`), []byte(`"`+ev.InsertID+`"`), 1)
		default:
			t.Fatalf("line %d: unexpected golden insert_id %q", line, wantID.InsertID)
		}
		if !bytes.Equal(ev.Raw, wantRaw) {
			t.Errorf("line %d:\n got %s\nwant %s\nparquet row: %s", line, ev.Raw, wantRaw, rec.Data)
		}
	}
	// The fixture must keep exercising all three paths, or this test
	// silently proves less.
	if !sawHashed || !sawDerived || !sawRejected {
		t.Errorf("fixture coverage: hashed insert_id %v, derived insert_id %v, rejection %v", sawHashed, sawDerived, sawRejected)
	}
}
