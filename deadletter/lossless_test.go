package deadletter_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/deadletter"
)

// TestLinesAlwaysParse writes records a strict JSON reader (jq, Python)
// would refuse if copied raw, and checks that every line is valid UTF-8
// JSON and that the exact bytes come back from Entry.Bytes.
func TestLinesAlwaysParse(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		wantB64 bool
	}{
		{"JSONInvalidUTF8", "{\"event_type\":\"caf\xe9\",\"user_id\":\"u-1\"}", true},
		{"TextInvalidUTF8", "{\"event_type\":\"caf\xe9", true},
		{"CSVRowInvalidUTF8", "a,\xff\xfe,c", true},
		{"TextValidUTF8", `{"a":`, false},
		{"JSONValid", `{"a":"é"}`, false},
		{"ControlChars", "x\x1b[2J\ny", false},
	}
	path := filepath.Join(t.TempDir(), "dl.jsonl")
	w := open(t, path, -1)
	for i, tt := range tests {
		e := deadletter.NewEntry(backfill.Position{Object: "file:///x\xff.jsonl", Record: int64(i)}, deadletter.StageDecode, "bad \xff", []byte(tt.raw))
		if got := e.DataBase64 != nil; got != tt.wantB64 {
			t.Errorf("%s: data_base64 present=%v, want %v", tt.name, got, tt.wantB64)
		}
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Bytes()
		if !utf8.Valid(line) || !json.Valid(line) {
			t.Errorf("line %d is not valid UTF-8 JSON: %q", n+1, line)
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Errorf("line %d: %v", n+1, err)
		}
		n++
	}
	es, err := deadletter.ReadAll(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range es {
		if got := e.Bytes(); !bytes.Equal(got, []byte(tests[i].raw)) {
			t.Errorf("%s: Bytes() = %q, want %q", tests[i].name, got, tests[i].raw)
		}
	}
	if n != len(tests) || len(es) != len(tests) {
		t.Fatalf("%d lines, %d entries, want %d", n, len(es), len(tests))
	}
}
