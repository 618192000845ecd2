package main

// Helpers of the end-to-end tests (e2e_*_test.go). Those tests run the real
// command path, Main with args exactly as a user types them, against the
// emulator behind httptest.NewServer, and assert from what the emulator
// accepted, the report, the dead-letter file and the checkpoint.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/deadletter"
	"github.com/backfillhq/backfill/emulator"
	"github.com/backfillhq/backfill/job"
	"github.com/backfillhq/backfill/mapping"

	"github.com/backfillhq/backfill/internal/testutil"
)

// e2eKey is the API key of most end-to-end runs.
const e2eKey = "e2e-key-0123456789"

// emu is an emulator behind a real HTTP server.
type emu struct {
	*emulator.Server
	URL string
}

// startEmulator serves an emulator with cfg; its logs are discarded.
func startEmulator(t *testing.T, cfg emulator.Config) *emu {
	t.Helper()
	s, url := testutil.StartEmulator(t, cfg, nil)
	return &emu{Server: s, URL: url}
}

// result is the outcome of one Main call.
type result struct {
	code           int
	stdout, stderr string
	elapsed        time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %s\n--- stdout:\n%s\n--- stderr:\n%s", r.code, r.elapsed.Round(time.Millisecond), r.stdout, r.stderr)
}

// runMain runs the command line args in-process.
func runMain(t *testing.T, args ...string) result {
	t.Helper()
	return runMainSoft(t, context.Background(), args...)
}

// runMainSoft is runMain with soft as the context whose end asks for a
// graceful stop (the first Ctrl-C).
func runMainSoft(t *testing.T, soft context.Context, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 75*time.Second)
	defer cancel()
	soft, cancelSoft := context.WithCancel(soft)
	defer cancelSoft()
	stop := context.AfterFunc(ctx, cancelSoft)
	defer stop()
	var stdout, stderr testutil.SyncBuffer
	start := time.Now()
	code := Main(ctx, soft, args, &stdout, &stderr)
	r := result{code: code, stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("backfill %s: timed out\n%s", strings.Join(args, " "), r)
	}
	return r
}

// workDir is where a run keeps its state and output files.
type workDir struct {
	dir        string
	checkpoint string
	report     string
	deadLetter string
}

func newWorkDir(t *testing.T) workDir {
	dir := t.TempDir()
	return workDir{
		dir:        dir,
		checkpoint: filepath.Join(dir, "state"),
		report:     filepath.Join(dir, "report.json"),
		deadLetter: filepath.Join(dir, "dead-letter.jsonl"),
	}
}

// runArgs returns "run" with the flags every e2e run uses (endpoint, state
// files, no progress bar, short linger), then extra.
func (w workDir) runArgs(e *emu, extra ...string) []string {
	args := []string{"run", "--endpoint", e.URL, "--checkpoint", w.checkpoint, "--report", w.report,
		"--dead-letter", w.deadLetter, "--progress", "none", "--linger", "20ms"}
	return append(args, extra...)
}

// reportFile is the JSON report, both typed and as a raw map (to check that
// fields are present).
type reportFile struct {
	job.Report
	raw map[string]any
}

func readReport(t *testing.T, path string) reportFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read report: %v", err)
	}
	var r reportFile
	if err := json.Unmarshal(data, &r.Report); err != nil {
		t.Fatalf("decode report: %v", err)
	}
	if err := json.Unmarshal(data, &r.raw); err != nil {
		t.Fatalf("decode report: %v", err)
	}
	return r
}

// checkInvariant checks events_read == accepted + rejected + skipped and
// that the documented counters are present.
func (r reportFile) checkInvariant(t *testing.T) {
	t.Helper()
	for _, k := range []string{"events_read", "events_accepted", "events_rejected", "events_skipped", "requests_batch", "requests_httpapi",
		"responses_429", "retries", "duration_seconds", "status", "objects"} {
		if _, ok := r.raw[k]; !ok {
			t.Errorf("report has no %q field", k)
		}
	}
	if r.EventsRead != r.EventsAccepted+r.EventsRejected+r.EventsSkipped {
		t.Errorf("report: events_read %d != events_accepted %d + events_rejected %d + events_skipped %d", r.EventsRead, r.EventsAccepted, r.EventsRejected, r.EventsSkipped)
	}
	if r.DurationSeconds <= 0 {
		t.Errorf("report: duration_seconds %v", r.DurationSeconds)
	}
}

// srcRec is one generated source record.
type srcRec struct {
	line   string         // the record as written
	event  map[string]any // the expected event (decoded JSON); nil when invalid
	reason string         // invalid: a substring of the dead-letter reason
}

// srcFile is one generated source file.
type srcFile struct {
	name string // path relative to the source root
	recs []srcRec
}

// genOptions shapes the events of genFile.
type genOptions struct {
	devices   int    // distinct device ids (cold devices); default 20
	noInsert  int    // every noInsert-th event has no insert_id (0: all have one)
	invalid   bool   // mix in invalid records
	hotDevice string // when set, every event uses this device and user
	startTime int64  // first event time, ms
}

// genFile generates n records for file name (its insert_ids start with tag).
func genFile(name, tag string, n int, o genOptions) srcFile {
	if o.devices == 0 {
		o.devices = 20
	}
	if o.startTime == 0 {
		o.startTime = 1704067200000
	}
	f := srcFile{name: name}
	for i := range n {
		if o.invalid {
			if rec, ok := invalidRec(i); ok {
				f.recs = append(f.recs, rec)
				continue
			}
		}
		dev, user := fmt.Sprintf("device-%s-%03d", tag, i%o.devices), fmt.Sprintf("user-%s-%04d", tag, i%(o.devices*2))
		if o.hotDevice != "" {
			dev, user = o.hotDevice, "user-"+o.hotDevice
		}
		ev := map[string]any{
			"event_type": fmt.Sprintf("e2e %s", []string{"view", "click", "buy"}[i%3]),
			"device_id":  dev,
			"user_id":    user,
			"time":       o.startTime + int64(i)*1000,
			"event_properties": map[string]any{
				"file":   tag,
				"i":      i,
				"price":  float64(i) + 0.25,
				"tags":   []any{"a", fmt.Sprint(i % 7)},
				"nested": map[string]any{"ok": i%2 == 0, "s": "naïve \"quoted\" \u2603"},
			},
		}
		if o.noInsert == 0 || i%o.noInsert != 0 {
			ev["insert_id"] = fmt.Sprintf("%s-%06d", tag, i)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			panic(err)
		}
		// Decode again so numbers compare as float64, like the received events.
		var back map[string]any
		if err := json.Unmarshal(b, &back); err != nil {
			panic(err)
		}
		f.recs = append(f.recs, srcRec{line: string(b), event: back})
	}
	return f
}

// invalidRec returns the invalid record used at index i, if any: one of
// each kind the pipeline rejects before sending.
func invalidRec(i int) (srcRec, bool) {
	switch i % 50 {
	case 7:
		return srcRec{line: `{"event_type":"broken","device_id":"device-broken","time":17040`, reason: "invalid JSON"}, true
	case 18:
		return srcRec{line: fmt.Sprintf(`{"device_id":"device-noevent-%d","time":1704100000000}`, i), reason: "missing event_type"}, true
	case 29:
		return srcRec{line: fmt.Sprintf(`{"event_type":"[Amplitude] Revenue","device_id":"device-rev-%d"}`, i), reason: "reserved event_type"}, true
	case 36:
		return srcRec{line: fmt.Sprintf(`{"event_type":"Search","user_id":"user-time-%d","time":"last tuesday"}`, i), reason: "time"}, true
	case 44:
		return srcRec{line: `{"event_type":"Search","user_id":"null"}`, reason: "user_id"}, true
	}
	return srcRec{}, false
}

// write writes f under root as JSON lines (gzipped for .gz) or, for .json,
// as a JSON array (of its valid records only).
func (f srcFile) write(t *testing.T, root string) {
	t.Helper()
	path := filepath.Join(root, filepath.FromSlash(f.name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if strings.HasSuffix(f.name, ".json") {
		buf.WriteString("[\n")
		for i, r := range f.recs {
			if r.event == nil {
				t.Fatalf("%s: invalid records cannot go in a JSON array", f.name)
			}
			if i > 0 {
				buf.WriteString(",\n")
			}
			buf.WriteString(r.line)
		}
		buf.WriteString("\n]\n")
	} else {
		for _, r := range f.recs {
			buf.WriteString(r.line)
			buf.WriteByte('\n')
		}
	}
	data := buf.Bytes()
	if strings.HasSuffix(f.name, ".gz") {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(data)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		data = z.Bytes()
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeFiles writes files under root.
func writeFiles(t *testing.T, root string, files ...srcFile) {
	t.Helper()
	for _, f := range files {
		f.write(t, root)
	}
}

// fileURL is the canonical object URL of a local file.
func fileURL(path string) string {
	return "file://" + filepath.ToSlash(path)
}

// wantEvent is an event expected at the emulator.
type wantEvent struct {
	insertID string
	derived  bool // insert_id derived by backfill, absent from the source
	event    map[string]any
	object   string
	record   int64
}

// wantBad is a record expected in the dead-letter file.
type wantBad struct {
	object string
	record int64
	reason string
}

// expect lists the valid and invalid records of files written under root,
// with object URLs built by objURL (fileURL of the local path by default).
func expect(root string, objURL func(name string) string, files ...srcFile) ([]wantEvent, []wantBad) {
	if objURL == nil {
		objURL = func(name string) string { return fileURL(filepath.Join(root, filepath.FromSlash(name))) }
	}
	var good []wantEvent
	var bad []wantBad
	for _, f := range files {
		obj := objURL(f.name)
		for i, r := range f.recs {
			if r.event == nil {
				bad = append(bad, wantBad{object: obj, record: int64(i), reason: r.reason})
				continue
			}
			w := wantEvent{event: r.event, object: obj, record: int64(i)}
			if id, ok := r.event["insert_id"].(string); ok {
				w.insertID = id
			} else {
				w.derived = true
				w.insertID = mapping.DeriveInsertID(backfill.Position{Object: obj, Record: int64(i)})
			}
			good = append(good, w)
		}
	}
	return good, bad
}

// received returns the emulator's accepted events by insert_id, failing on
// an insert_id accepted twice.
func received(t *testing.T, e *emu) map[string]emulator.Recorded {
	t.Helper()
	got := map[string]emulator.Recorded{}
	for _, r := range e.Events() {
		if r.InsertID == "" {
			t.Errorf("accepted event without insert_id: %s", r.Event)
			continue
		}
		if _, dup := got[r.InsertID]; dup {
			t.Errorf("insert_id %s accepted twice", r.InsertID)
		}
		got[r.InsertID] = r
	}
	return got
}

// checkDelivered asserts that the emulator accepted exactly the events of
// want, each once, with the source's content: the only differences allowed
// are the added "$skip_user_properties_sync": true and the derived
// insert_id.
func checkDelivered(t *testing.T, e *emu, want []wantEvent) map[string]emulator.Recorded {
	t.Helper()
	got := received(t, e)
	if len(got) != len(want) {
		t.Errorf("emulator accepted %d distinct events, want %d", len(got), len(want))
	}
	missing := 0
	for _, w := range want {
		r, ok := got[w.insertID]
		if !ok {
			if missing++; missing <= 5 {
				t.Errorf("event %s (%s record %d) never arrived", w.insertID, w.object, w.record)
			}
			continue
		}
		checkContent(t, w, r.Event)
	}
	if missing > 5 {
		t.Errorf("... %d events missing in all", missing)
	}
	return got
}

// checkContent compares a received event with the expected source event.
func checkContent(t *testing.T, w wantEvent, raw json.RawMessage) {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Errorf("received event %s is not JSON: %v", raw, err)
		return
	}
	if v, ok := ev["$skip_user_properties_sync"]; !ok || v != true {
		t.Errorf("event %s: $skip_user_properties_sync=%v, want true", w.insertID, v)
	}
	delete(ev, "$skip_user_properties_sync")
	if w.derived {
		if ev["insert_id"] != w.insertID {
			t.Errorf("event %s record %d: insert_id %v, want the derived %s", w.object, w.record, ev["insert_id"], w.insertID)
		}
		delete(ev, "insert_id")
	}
	if !reflect.DeepEqual(ev, w.event) {
		want, _ := json.Marshal(w.event)
		got, _ := json.Marshal(ev)
		t.Errorf("event %s content differs:\n got %s\nwant %s", w.insertID, got, want)
	}
}

// readDeadLetter parses the dead-letter file (missing means empty).
func readDeadLetter(t *testing.T, path string) []deadletter.Entry {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []deadletter.Entry
	for i, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if line == "" {
			continue
		}
		var raw map[string]any
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Fatalf("dead-letter line %d is not JSON: %v: %s", i+1, err, line)
		}
		for _, k := range []string{"object", "record", "stage", "reason", "data"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("dead-letter line %d has no %q: %s", i+1, k, line)
			}
		}
		var e deadletter.Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// checkDeadLetter asserts the dead-letter file holds exactly want, located
// (object, record, line for text formats) and with a matching reason.
func checkDeadLetter(t *testing.T, path string, want []wantBad) {
	t.Helper()
	entries := readDeadLetter(t, path)
	type key struct {
		obj string
		rec int64
	}
	got := map[key]deadletter.Entry{}
	for _, e := range entries {
		k := key{e.Object, e.Record}
		if _, dup := got[k]; dup {
			t.Errorf("dead-letter: %s record %d written twice", e.Object, e.Record)
		}
		got[k] = e
	}
	if len(entries) != len(want) {
		t.Errorf("dead-letter holds %d entries, want %d", len(entries), len(want))
	}
	for _, w := range want {
		e, ok := got[key{w.object, w.record}]
		if !ok {
			t.Errorf("dead-letter: no entry for %s record %d (%s)", w.object, w.record, w.reason)
			continue
		}
		if e.Reason == "" || !strings.Contains(e.Reason, w.reason) {
			t.Errorf("dead-letter %s record %d: reason %q, want it to mention %q", w.object, w.record, e.Reason, w.reason)
		}
		if e.Stage == "" || len(e.Data) == 0 {
			t.Errorf("dead-letter %s record %d: stage %q data %s", w.object, w.record, e.Stage, e.Data)
		}
		if e.Line != w.record+1 {
			t.Errorf("dead-letter %s record %d: line %d, want %d", w.object, w.record, e.Line, w.record+1)
		}
	}
}
