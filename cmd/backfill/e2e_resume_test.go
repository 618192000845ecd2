package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/backfillhq/backfill/emulator"
)

// TestE2EInterruptResume stops a run gracefully (the first Ctrl-C) while
// requests are in flight, then runs the same command again: the first run
// exits 130 with its checkpoint saved, the second finishes, and every event
// arrived exactly once (in-flight events re-sent on resume are absorbed by
// dedupe, records already settled are not read again).
func TestE2EInterruptResume(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		stopAt int64 // the request during which the stop arrives
		flags  []string
		faults emulator.Faults
	}{
		{"EarlyOneLane", 2, []string{"--lanes", "1"}, emulator.Faults{}},
		{"LaterManyLanes", 8, []string{"--lanes", "4"}, emulator.Faults{}},
		{"WithIngestThenFail", 5, []string{"--lanes", "2"}, emulator.Faults{FailAfterRate: 0.2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			files := []srcFile{
				genFile("a.jsonl", "a", 300, genOptions{invalid: true, noInsert: 3}),
				genFile("b.jsonl.gz", "b", 300, genOptions{devices: 40}),
				genFile("c.jsonl", "c", 200, genOptions{invalid: true}),
			}
			writeFiles(t, root, files...)
			good, bad := expect(root, nil, files...)

			e := startEmulator(t, emulator.Config{Faults: tt.faults, Seed: 7})
			soft, stop := context.WithCancel(context.Background())
			defer stop()
			var n atomic.Int64
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == tt.stopAt {
					stop()
				}
				e.ServeHTTP(w, r)
			}))
			t.Cleanup(ts.Close)
			front := &emu{Server: e.Server, URL: ts.URL}

			w := newWorkDir(t)
			args := append(append(w.runArgs(front, "--api-key", e2eKey, "--route", "batch", "--batch-size", "10",
				"--throttle-pause", "50ms"), tt.flags...), root)
			res := runMainSoft(t, soft, args...)
			if res.code != ExitInterrupted {
				t.Fatalf("first run: exit code %d, want %d\n%s", res.code, ExitInterrupted, res)
			}
			if !strings.Contains(res.stderr, "run the same command again to resume") {
				t.Errorf("no resume hint:\n%s", res.stderr)
			}
			rep := readReport(t, w.report)
			if rep.Status != "interrupted" || rep.EventsRead == 0 || rep.EventsAccepted >= int64(len(good)) {
				t.Errorf("interrupted report: status %s, read %d, accepted %d", rep.Status, rep.EventsRead, rep.EventsAccepted)
			}
			first := len(e.Events())

			res = runMain(t, args...)
			if res.code != ExitRejected {
				t.Fatalf("resumed run: exit code %d, want %d\n%s", res.code, ExitRejected, res)
			}
			checkDelivered(t, e, good)
			checkDeadLetter(t, w.deadLetter, bad)
			rep = readReport(t, w.report)
			rep.checkInvariant(t)
			if rep.EventsAccepted != int64(len(good)) || rep.EventsRejected != int64(len(bad)) || rep.Runs != 2 {
				t.Errorf("final report: accepted %d rejected %d runs %d; want %d %d 2", rep.EventsAccepted, rep.EventsRejected, rep.Runs, len(good), len(bad))
			}
			// The resumed run must not re-read what the first run settled.
			if rep.Run.EventsRead >= int64(len(good)+len(bad)) {
				t.Errorf("the resumed run read %d records: it started over", rep.Run.EventsRead)
			}
			t.Logf("first run accepted %d events; resumed run read %d records", first, rep.Run.EventsRead)
		})
	}
}
