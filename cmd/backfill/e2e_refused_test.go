package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/backfillhq/backfill/deadletter"
	"github.com/backfillhq/backfill/emulator"
	"github.com/backfillhq/backfill/fixtures/fixturegen"
	"github.com/backfillhq/backfill/reader"

	"github.com/backfillhq/backfill/internal/testutil"
)

// sourceRecords returns the records the reader makes of the file at path
// (with the fixtures' CSV column types), by record index.
func sourceRecords(t *testing.T, path string) map[int64][]byte {
	t.Helper()
	rd, err := reader.New(reader.Options{ColumnTypes: fixturegen.CSVColumnTypes})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	ctx := context.Background()
	ls := rd.List(ctx, []string{path})
	obj, err := ls.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := rd.Open(ctx, obj, reader.Start{})
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	out := map[int64][]byte{}
	for {
		rec, err := dec.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[rec.Pos.Record] = rec.Data
	}
}

func gzipFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, z.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// silencedDevices returns the device ids of a few fixture events: the
// emulator answers their events with 400 silenced.
func silencedDevices(n int) []string {
	g := fixturegen.NewGenerator(fixturegen.Options{N: n, Seed: 7})
	var out []string
	for i := 0; ; i++ {
		ev, ok := g.Next()
		if !ok {
			return out
		}
		if i%40 == 3 {
			out = append(out, ev.DeviceID)
		}
	}
}

// TestE2ERefusedSourceRecord: an event the server refuses is dead-lettered
// with its source record, re-read from its object (local file or bucket,
// plain or gzip, every format), exactly as the reader produced it, with
// the event as sent in "sent"; and the dead-letter file fed back with the
// same preset maps to the same events (it used to hold the mapped event,
// which a vendor preset cannot map again).
func TestE2ERefusedSourceRecord(t *testing.T) {
	const n = 300
	dir := t.TempDir()
	for _, f := range []string{"jsonl", "jsonl.gz", "json", "csv", "parquet"} {
		if err := fixturegen.WriteFile(filepath.Join(dir, "events."+f), fixturegen.Options{N: n, Seed: 7, RowGroupRows: 64}); err != nil {
			t.Fatal(err)
		}
	}
	gzipFile(t, filepath.Join(dir, "events.json"), filepath.Join(dir, "events.json.gz"))
	gzipFile(t, filepath.Join(dir, "events.csv"), filepath.Join(dir, "events.csv.gz"))
	mixpanel, err := filepath.Abs(filepath.Join("..", "..", "fixtures", "presets", "mixpanel", "input.jsonl"))
	if err != nil {
		t.Fatal(err)
	}

	s3 := testutil.StartS3(t, "events")

	type tcase struct {
		name, file, preset string
		silenced           []string
		bucket             bool
	}
	var tests []tcase
	for _, f := range []string{"jsonl", "jsonl.gz", "json", "json.gz", "csv", "csv.gz", "parquet"} {
		for _, bucket := range []bool{false, true} {
			name := "Local/" + f
			if bucket {
				name = "S3/" + f
			}
			tests = append(tests, tcase{name: name, file: filepath.Join(dir, "events."+f), preset: "amplitude", silenced: silencedDevices(n), bucket: bucket})
		}
	}
	tests = append(tests, tcase{name: "Local/mixpanel", file: mixpanel, preset: "mixpanel", silenced: []string{"17b1c8e3a0c4d1-0a1b2c3d", "anon-dev-42"}})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := sourceRecords(t, tt.file)
			source := tt.file
			if tt.bucket {
				data, err := os.ReadFile(tt.file)
				if err != nil {
					t.Fatal(err)
				}
				key := strings.ReplaceAll(tt.name, "/", "-") + "/" + filepath.Base(tt.file)
				s3.Put(t, "events", key, data)
				source = s3.URL("events", key)
			}
			e := startEmulator(t, emulator.Config{Silenced: tt.silenced})
			w := newWorkDir(t)
			res := runMain(t, append(w.runArgs(e, "--api-key", e2eKey, "--preset", tt.preset, "--csv-types", fixturegen.CSVColumnTypesFlag(), "--batch-size", "40"), source)...)
			if res.code != ExitRejected {
				t.Fatalf("exit %d, want %d\n%s", res.code, ExitRejected, res)
			}
			lines := map[int64][]byte{}
			if strings.HasSuffix(tt.file, ".jsonl") {
				data, _ := os.ReadFile(tt.file)
				for i, l := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
					lines[int64(i)] = l
				}
			}
			sent := map[string]map[string]any{} // by insert_id
			for _, d := range readDeadLetter(t, w.deadLetter) {
				if d.Stage != deadletter.StageServer {
					continue
				}
				rec, ok := want[d.Record]
				if !ok {
					t.Fatalf("entry for record %d, which the reader does not produce", d.Record)
				}
				var compact bytes.Buffer
				json.Compact(&compact, rec)
				if d.DataSource != deadletter.DataSourceRecord || !bytes.Equal(d.Bytes(), compact.Bytes()) {
					t.Errorf("record %d: data_source %q (%s), data\n%s\nwant the source record\n%s", d.Record, d.DataSource, d.DataSourceReason, d.Data, compact.Bytes())
				}
				if l, ok := lines[d.Record]; ok && !bytes.Equal(d.Bytes(), l) {
					t.Errorf("record %d: data %s, want the line %s", d.Record, d.Data, l)
				}
				var ev map[string]any
				if err := json.Unmarshal(d.Sent, &ev); err != nil || ev["insert_id"] != d.InsertID || ev["$skip_user_properties_sync"] != true {
					t.Errorf("record %d: sent %s (%v), want the event as sent, with insert_id %s", d.Record, d.Sent, err, d.InsertID)
				}
				sent[d.InsertID] = ev
			}
			if len(sent) == 0 {
				t.Fatalf("no server entries\n%s", res)
			}

			// Fed back with the same preset, the entries map to the events
			// that were sent.
			e2 := startEmulator(t, emulator.Config{})
			w2 := newWorkDir(t)
			refeed := filepath.Join(w2.dir, "in", "dead-letter.jsonl")
			if err := os.MkdirAll(filepath.Dir(refeed), 0o755); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(w.deadLetter)
			var server []byte
			for _, l := range bytes.SplitAfter(data, []byte("\n")) {
				if bytes.Contains(l, []byte(`"stage":"server"`)) {
					server = append(server, l...)
				}
			}
			if err := os.WriteFile(refeed, server, 0o644); err != nil {
				t.Fatal(err)
			}
			if res := runMain(t, append(w2.runArgs(e2, "--api-key", e2eKey, "--preset", tt.preset), refeed)...); res.code != ExitOK {
				t.Fatalf("re-feed: exit %d\n%s", res.code, res)
			}
			got := received(t, e2)
			if len(got) != len(sent) {
				t.Errorf("re-feed: %d events accepted, want the %d refused", len(got), len(sent))
			}
			for id, ev := range sent {
				r, ok := got[id]
				if !ok {
					t.Errorf("re-feed: event %s not sent again", id)
					continue
				}
				var back map[string]any
				json.Unmarshal(r.Event, &back)
				if !reflect.DeepEqual(back, ev) {
					t.Errorf("re-feed maps %s differently:\n got %s\nwant %v", id, r.Event, ev)
				}
			}
		})
	}
}

// TestE2ERefusedObjectChanged: when the object changed between the read
// and the refusal, its records are not taken from the new content: the
// entry holds the event as sent, flagged data_source "mapped" with the
// reason.
func TestE2ERefusedObjectChanged(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "a.jsonl")
	writeFiles(t, root, genFile("a.jsonl", "a", 30, genOptions{devices: 3}))
	var once sync.Once
	s, u := testutil.StartEmulator(t, emulator.Config{Silenced: []string{"device-a-001"}}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			once.Do(func() {
				// The object is rewritten while the first request is in flight.
				f, err := os.OpenFile(src, os.O_APPEND|os.O_WRONLY, 0)
				if err == nil {
					f.WriteString(`{"event_type":"late","device_id":"device-late-1","time":1704067200000}` + "\n")
					f.Close()
				}
			})
			h.ServeHTTP(w, r)
		})
	})
	e := &emu{Server: s, URL: u}
	w := newWorkDir(t)
	res := runMain(t, append(w.runArgs(e, "--api-key", e2eKey), src)...)
	if res.code != ExitRejected {
		t.Fatalf("exit %d, want %d\n%s", res.code, ExitRejected, res)
	}
	n := 0
	for _, d := range readDeadLetter(t, w.deadLetter) {
		if d.Stage != deadletter.StageServer {
			continue
		}
		n++
		var ev map[string]any
		json.Unmarshal(d.Data, &ev)
		if d.DataSource != deadletter.DataSourceMapped || !strings.Contains(d.DataSourceReason, "changed since it was listed") ||
			ev["$skip_user_properties_sync"] != true || d.Sent != nil {
			t.Errorf("record %d: data_source %q (%q), data %s, sent %s; want the event as sent, flagged mapped because the object changed", d.Record, d.DataSource, d.DataSourceReason, d.Data, d.Sent)
		}
	}
	if n != 10 {
		t.Errorf("%d server entries, want 10\n%s", n, res)
	}
	if !strings.Contains(res.stderr, "without their source records") {
		t.Errorf("no log line says the source records were not kept:\n%s", res.stderr)
	}
}
