package deadletter_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/deadletter"
)

var t0 = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

func entry(r int64, reason string) deadletter.Entry {
	e := deadletter.NewEntry(backfill.Position{Object: "s3://b/a.jsonl", Record: r, Offset: r * 10, Line: r + 1},
		deadletter.StageValidate, reason, []byte(fmt.Sprintf(`{"n":%d}`, r)))
	e.Time = t0
	return e
}

func open(t *testing.T, path string, truncateTo int64) *deadletter.Writer {
	t.Helper()
	w, err := deadletter.Open(path, truncateTo)
	if err != nil {
		t.Fatalf("Open(%d): %v", truncateTo, err)
	}
	return w
}

func records(t *testing.T, path string) []int64 {
	t.Helper()
	es, err := deadletter.ReadAll(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, e := range es {
		out = append(out, e.Record)
	}
	return out
}

func TestWriteRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "dead.jsonl") // parents created
	w := open(t, path, -1)
	w.Write(entry(0, "missing event_type"))
	e := deadletter.NewEntry(backfill.Position{Object: "o", Record: 1, Offset: -1, RowGroup: 2, Row: 5},
		deadletter.StageServer, "invalid id length", []byte("{\n  \"user_id\": \"<a&b>\"\n}"))
	e.Status, e.InsertID = 400, "o#1"
	w.Write(e)
	w.Write(deadletter.NewEntry(backfill.Position{Object: "o", Record: 2}, deadletter.StageDecode, "bad json", []byte("{\"a\":\xff")))
	size, err := w.Sync()
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() != size || size != w.Size() {
		t.Fatalf("Sync size %d, file %d, Size %d", size, fi.Size(), w.Size())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(entry(3, "x")); !errors.Is(err, deadletter.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3 (pretty JSON must be compacted):\n%s", len(lines), data)
	}
	if want := `{"backfill_dead_letter":1,"object":"s3://b/a.jsonl","record":0,"line":1,"stage":"validate","reason":"missing event_type","data":{"n":0},"time":"2024-05-01T10:00:00Z"}`; lines[0] != want {
		t.Fatalf("line 1:\n%s\nwant\n%s", lines[0], want)
	}
	es, err := deadletter.ReadAll(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := es[1]; got.RowGroup != 2 || got.Row != 5 || got.Status != 400 || got.InsertID != "o#1" ||
		string(got.Data) != `{"user_id":"<a&b>"}` || got.Time.IsZero() {
		t.Fatalf("entry 2 = %+v data %s", got, got.Data)
	}
	if got, want := string(es[2].Data), "\"{\\\"a\\\":\ufffd\""; got != want {
		t.Fatalf("invalid JSON data = %s, want %s", got, want)
	}
	if p := es[1].Position(); p.Object != "o" || p.Record != 1 || p.RowGroup != 2 {
		t.Fatalf("Position=%+v", p)
	}
}

// TestTruncateOnResume: entries written after the last checkpoint are cut
// off when resuming, so re-processed records do not duplicate lines.
func TestTruncateOnResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead.jsonl")
	w := open(t, path, -1)
	for r := range int64(3) {
		w.Write(entry(r, "bad"))
	}
	checkpointSize := w.Size()
	if synced, err := w.Sync(); err != nil || synced != checkpointSize {
		t.Fatalf("Sync=%d,%v want %d", synced, err, checkpointSize)
	}
	for r := int64(3); r < 5; r++ { // after the checkpoint
		w.Write(entry(r, "bad"))
	}
	w.Sync() // durable, then killed
	w.Close()

	w = open(t, path, checkpointSize)
	if got := w.Size(); got != checkpointSize {
		t.Fatalf("Size after resume %d, want %d", got, checkpointSize)
	}
	for r := int64(3); r < 6; r++ { // re-processed and beyond
		w.Write(entry(r, "bad"))
	}
	w.Close()
	if got, want := fmt.Sprint(records(t, path)), "[0 1 2 3 4 5]"; got != want {
		t.Fatalf("records %s, want %s", got, want)
	}

	if _, err := deadletter.Open(path, 1<<20); !errors.Is(err, deadletter.ErrShorter) {
		t.Fatalf("Open past the end: %v, want ErrShorter", err)
	}
	w = open(t, path, 0) // a fresh checkpoint: empty file
	w.Close()
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Fatalf("size %d after Open(path, 0)", fi.Size())
	}
}

func TestTornLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead.jsonl")
	w := open(t, path, -1)
	w.Write(entry(0, "bad"))
	w.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"backfill_dead_letter":1,"obj`)
	f.Close()
	w = open(t, path, -1)
	w.Write(entry(1, "bad"))
	w.Close()
	if got, want := fmt.Sprint(records(t, path)), "[0 1]"; got != want {
		t.Fatalf("records %s, want %s", got, want)
	}
}

func TestConcurrentWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead.jsonl")
	w := open(t, path, -1)
	const workers, each = 4, 500
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := range each {
				if err := w.Write(entry(int64(g*each+i), strings.Repeat("x", i%300))); err != nil {
					t.Error(err)
					return
				}
				if i%100 == 0 {
					w.Sync()
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := records(t, path)
	seen := map[int64]bool{}
	for _, r := range got {
		seen[r] = true
	}
	if len(got) != workers*each || len(seen) != workers*each {
		t.Fatalf("%d lines, %d distinct, want %d", len(got), len(seen), workers*each)
	}
}

func TestReaderCorrupt(t *testing.T) {
	in := `{"backfill_dead_letter":1,"object":"a","record":1,"stage":"map","reason":"r","time":"2024-05-01T10:00:00Z"}

{"some":"other json"}
not json
{"backfill_dead_letter":1,"object":"a","record":2,"stage":"map","reason":"r","time":"2024-05-01T10:00:00Z"}
`
	r := deadletter.NewReader(strings.NewReader(in))
	var got []string
	for {
		e, err := r.Next()
		if err != nil && !errors.Is(err, deadletter.ErrCorrupt) {
			break
		}
		if err != nil {
			got = append(got, err.Error())
			continue
		}
		got = append(got, fmt.Sprint(e.Record))
	}
	want := []string{"1", "corrupt dead-letter line: line 3: not a dead-letter entry (backfill_dead_letter=0)",
		"corrupt dead-letter line: line 4: invalid character 'o' in literal null (expecting 'u')", "2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestSummary(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead.jsonl")
	w := open(t, path, -1)
	reasons := []string{"b", "a", "b", "c", "b", "a"}
	for i, r := range reasons {
		w.Write(entry(int64(i), r))
	}
	srv := entry(9, "a")
	srv.Stage = deadletter.StageServer
	w.Write(srv)
	w.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("garbage\n")
	f.Close()

	s, corrupt, err := deadletter.SummarizeFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Total != 7 || corrupt != 1 || s.ByStage[deadletter.StageValidate] != 6 || s.ByStage[deadletter.StageServer] != 1 {
		t.Fatalf("summary %+v corrupt %d", s, corrupt)
	}
	if got, want := fmt.Sprint(s.Top(3)), "[{validate b 3} {validate a 2} {server a 1}]"; got != want {
		t.Fatalf("Top(3)=%s, want %s", got, want)
	}
	if n := len(s.Top(0)); n != 4 {
		t.Fatalf("Top(0) has %d, want 4", n)
	}
	es, _ := deadletter.ReadAll(path)
	if got := deadletter.Summarize(es).Total; got != 7 {
		t.Fatalf("Summarize total %d", got)
	}
}

func TestRawData(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "Object", in: `{"a":1}`, want: `{"a":1}`},
		{name: "Empty", in: ``, want: ``},
		{name: "CSVRow", in: `a,b,"c"`, want: `"a,b,\"c\""`},
		{name: "Truncated", in: `{"a":`, want: `"{\"a\":"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := deadletter.RawData([]byte(tt.in)); !bytes.Equal(got, []byte(tt.want)) {
				t.Fatalf("RawData(%q)=%s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
