package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunEmulator(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "accepted.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runEmulator(ctx, []string{"--addr", "127.0.0.1:0", "--record", rec, "--api-key", "k1,k2",
			"--http-eps", "1", "--daily-quota", "0", "--silence", "dev-spam-77"}, pw, &stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("read first line: %v (stderr %s)", err, stderr.String())
	}
	base := strings.TrimSpace(line)
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("first line %q is not a base URL", line)
	}
	go io.Copy(io.Discard, pr)

	postJSON := func(path, body string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("%s: decode: %v", path, err)
		}
		return resp.StatusCode, m
	}
	ev := `{"event_type":"e","device_id":"device-0001","insert_id":"a"}`
	tests := []struct {
		path, body string
		status     int
	}{
		{"/2/httpapi", `{"api_key":"k2","events":[` + ev + `]}`, 200},
		{"/2/httpapi", `{"api_key":"k2","events":[` + ev + `]}`, 200}, // duplicate
		{"/2/httpapi", `{"api_key":"nope","events":[` + ev + `]}`, 400},
		{"/batch", `{"api_key":"k1","events":[{"event_type":"e","device_id":"dev-spam-77"}]}`, 400},
		{"/batch", `{"api_key":"k1","events":[{"event_type":"e","device_id":"device-0002"}]}`, 200},
	}
	for _, tt := range tests {
		if got, m := postJSON(tt.path, tt.body); got != tt.status {
			t.Errorf("%s %s: status %d, want %d (%v)", tt.path, tt.body, got, tt.status, m)
		}
	}
	resp, err := http.Get(base + "/_emulator/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		EventsAccepted  int `json:"events_accepted"`
		EventsDuplicate int `json:"events_duplicate"`
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.EventsAccepted != 2 || st.EventsDuplicate != 1 {
		t.Errorf("stats %+v", st)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runEmulator: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("runEmulator did not stop after cancel")
	}
	b, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"endpoint":"httpapi","event":` + ev + "}\n" +
		`{"endpoint":"batch","event":{"event_type":"e","device_id":"device-0002"}}` + "\n"
	if string(b) != want {
		t.Errorf("record file:\n%s\nwant:\n%s", b, want)
	}
	if strings.Contains(stderr.String(), "k1") || strings.Contains(stderr.String(), "nope") {
		t.Errorf("an API key leaked to stderr: %s", stderr.String())
	}
}

func TestRunEmulatorFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr error
		usage   bool
	}{
		{"Help", []string{"--help"}, flag.ErrHelp, true},
		{"UnknownFlag", []string{"--nope"}, nil, true},
		{"StrayArgument", []string{"extra"}, nil, true},
		{"BadRate", []string{"--drop-rate", "2"}, nil, false},
		{"BadServerError", []string{"--server-errors", "abc"}, nil, false},
		{"BadAddr", []string{"--addr", "256.0.0.1:bad"}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runEmulator(context.Background(), tt.args, &stdout, &stderr)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err=%v, want %v", err, tt.wantErr)
			}
			if got := strings.Contains(stderr.String(), "Examples:"); got != tt.usage {
				t.Errorf("usage printed=%v, want %v; stderr %s", got, tt.usage, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}
