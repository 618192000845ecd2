package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestValidateIDWarnings: validate warns, with counts and the flag to use,
// when ids would be removed as too short or blocked (the repair policy) or
// records rejected because of them; with the suggested flag the short-id
// warnings go away.
func TestValidateIDWarnings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var b strings.Builder
	for i := 0; i < 10; i++ {
		// Database keys as user ids, next to a good device id: rejected, as
		// Amplitude answers 400 events_with_invalid_id_lengths for them.
		fmt.Fprintf(&b, `{"event_type":"e","user_id":"%d","device_id":"device-%04d","time":%d}`+"\n", i+1, i, 1700000000000+i)
	}
	// Only a short id: rejected.
	b.WriteString(`{"event_type":"e","user_id":"40","time":1700000000000}` + "\n")
	// A blocked device id next to a good user id: stripped.
	b.WriteString(`{"event_type":"e","user_id":"user-00001","device_id":"anonymous","time":1700000000000}` + "\n")
	src := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(src, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	res := runMain(t, "validate", src)
	if res.code != ExitRejected {
		t.Fatalf("exit %d\n%s", res.code, res)
	}
	for _, want := range []string{
		`warning: 11 records would be rejected because a user_id or device_id is shorter than 5 characters .*--min-id-length`,
		`warning: 1 user_id/device_id values are on Amplitude's blocked list .*--mapping`,
	} {
		if !regexp.MustCompile(want).MatchString(res.stdout) {
			t.Errorf("output lacks %q:\n%s", want, res.stdout)
		}
	}
	res = runMain(t, "validate", "--min-id-length", "1", src)
	if res.code != 0 {
		t.Fatalf("with --min-id-length 1: exit %d\n%s", res.code, res)
	}
	if strings.Contains(res.stdout, "shorter than") {
		t.Errorf("short-id warning with --min-id-length 1:\n%s", res.stdout)
	}
}
