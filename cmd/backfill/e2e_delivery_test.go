package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/emulator"
)

// deliveryDataset writes a mixed dataset (JSON lines with invalid records
// and events without insert_id, a gzipped JSON lines file, a JSON array)
// under a new directory and returns it with its expectations.
func deliveryDataset(t *testing.T) (string, []wantEvent, []wantBad) {
	root := t.TempDir()
	files := []srcFile{
		genFile("a.jsonl", "a", 260, genOptions{noInsert: 9, invalid: true}),
		genFile("b.jsonl.gz", "b", 200, genOptions{noInsert: 5, invalid: true, devices: 7}),
		genFile("c.json", "c", 120, genOptions{devices: 30}),
	}
	writeFiles(t, root, files...)
	good, bad := expect(root, nil, files...)
	return root, good, bad
}

// TestE2EExactlyOnce runs mixed datasets through several sending
// configurations: every valid event arrives exactly once with its content,
// every invalid record is dead-lettered with a reason, and the report adds
// up.
func TestE2EExactlyOnce(t *testing.T) {
	t.Parallel()
	// With --route auto and --tail-ratio 2 the first file goes through
	// /batch and the two trailing ones (each at most twice the size of the
	// median file before it) through /2/httpapi; at the default ratio of a
	// quarter, c.json (120 events next to 260 and 200) is not small next to
	// the data and everything goes through /batch.
	auto := map[string]backfill.Route{"a.jsonl": backfill.RouteBatch, "b.jsonl.gz": backfill.RouteHTTP, "c.json": backfill.RouteHTTP}
	allBatch := map[string]backfill.Route{"a.jsonl": backfill.RouteBatch, "b.jsonl.gz": backfill.RouteBatch, "c.json": backfill.RouteBatch}
	allHTTP := map[string]backfill.Route{"a.jsonl": backfill.RouteHTTP, "b.jsonl.gz": backfill.RouteHTTP, "c.json": backfill.RouteHTTP}
	tests := []struct {
		name   string
		flags  []string
		routes map[string]backfill.Route // by file
	}{
		{"Default", nil, allBatch},
		{"GzipOneLaneSmallBatches", []string{"--gzip", "--lanes", "1", "--batch-size", "7", "--tail-ratio", "2"}, auto},
		{"ManyLanesRouteBatch", []string{"--lanes", "64", "--batch-size", "50", "--route", "batch"}, allBatch},
		{"RouteHTTP", []string{"--route", "http"}, allHTTP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root, good, bad := deliveryDataset(t)
			e := startEmulator(t, emulator.Config{})
			w := newWorkDir(t)
			args := append(w.runArgs(e, "--api-key", e2eKey), tt.flags...)
			res := runMain(t, append(args, root)...)
			if res.code != ExitRejected {
				t.Fatalf("exit code %d, want %d (rejected records)\n%s", res.code, ExitRejected, res)
			}
			got := checkDelivered(t, e, good)
			for _, w := range good {
				want := tt.routes[filepath.Base(w.object)]
				if r, ok := got[w.insertID]; ok && r.Route != want {
					t.Errorf("event %s of %s arrived on %s, want %s", w.insertID, w.object, r.Route, want)
					break
				}
			}
			checkDeadLetter(t, w.deadLetter, bad)

			rep := readReport(t, w.report)
			rep.checkInvariant(t)
			if rep.EventsRead != int64(len(good)+len(bad)) || rep.EventsAccepted != int64(len(good)) || rep.EventsRejected != int64(len(bad)) {
				t.Errorf("report read %d accepted %d rejected %d, want %d %d %d", rep.EventsRead, rep.EventsAccepted, rep.EventsRejected, len(good)+len(bad), len(good), len(bad))
			}
			if rep.Status != "complete_with_rejections" || rep.ObjectsDone != 3 || rep.ObjectsFailed != 0 {
				t.Errorf("report status %s, objects done %d failed %d", rep.Status, rep.ObjectsDone, rep.ObjectsFailed)
			}
			if len(rep.RejectionReasons) == 0 {
				t.Error("report lists no rejection reasons")
			}
			st := e.Stats()
			if got := rep.RequestsBatch + rep.RequestsHTTPAPI; got != st.RequestsBatch+st.RequestsHTTP || got == 0 {
				t.Errorf("report counts %d requests, the emulator saw %d", got, st.RequestsBatch+st.RequestsHTTP)
			}
			if st.EventsDuplicate != 0 || rep.Responses429 != 0 || rep.Retries != 0 {
				t.Errorf("clean run: %d duplicates, %d 429s, %d retries", st.EventsDuplicate, rep.Responses429, rep.Retries)
			}
			if !strings.Contains(res.stdout, "dead-letter file: "+w.deadLetter) {
				t.Errorf("summary does not point at the dead-letter file:\n%s", res.stdout)
			}
		})
	}
}

// TestE2EFaults injects the emulator's faults: 5xx before and after ingest,
// 503, dropped connections, forced 413 and 429. Every valid event still
// arrives exactly once (duplicates from ingest-then-fail are absorbed by
// dedupe) and the report adds up.
func TestE2EFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		faults emulator.Faults
		queue  func(e *emu)
		flags  []string
		check  func(t *testing.T, st emulator.Stats, rep reportFile)
	}{
		{
			name:   "FailBeforeIngest",
			faults: emulator.Faults{FailBeforeRate: 0.25},
			queue:  func(e *emu) { e.FailNext(1, 500); e.FailNext(1, 502); e.FailNext(1, 504) },
			check: func(t *testing.T, st emulator.Stats, rep reportFile) {
				if st.Responses[500] == 0 || st.Responses[502] == 0 || st.Responses[504] == 0 {
					t.Errorf("responses %v, want 500, 502 and 504", st.Responses)
				}
				if rep.Retries == 0 || rep.Responses5xx == 0 {
					t.Errorf("report retries %d, 5xx %d", rep.Retries, rep.Responses5xx)
				}
			},
		},
		{
			name:   "FailAfterIngest",
			faults: emulator.Faults{FailAfterRate: 0.25},
			queue:  func(e *emu) { e.FailNextAfterIngest(1, 500); e.FailNextAfterIngest(1, 504) },
			check: func(t *testing.T, st emulator.Stats, rep reportFile) {
				if st.IngestedThenFailed < 2 || st.EventsDuplicate == 0 {
					t.Errorf("ingested-then-failed %d, duplicates %d: dedupe not exercised", st.IngestedThenFailed, st.EventsDuplicate)
				}
			},
		},
		{
			name:   "Unavailable",
			faults: emulator.Faults{UnavailableRate: 0.3},
			queue:  func(e *emu) { e.FailNext(2, 503) },
			check: func(t *testing.T, st emulator.Stats, rep reportFile) {
				if st.Responses[503] < 2 || st.EventsDuplicate != 0 {
					t.Errorf("503s %d, duplicates %d", st.Responses[503], st.EventsDuplicate)
				}
			},
		},
		{
			name:   "DroppedConnections",
			faults: emulator.Faults{DropRate: 0.2},
			queue:  func(e *emu) { e.DropNext(2) },
			check: func(t *testing.T, st emulator.Stats, rep reportFile) {
				if st.Dropped < 2 || rep.Retries < 2 {
					t.Errorf("dropped %d, retries %d", st.Dropped, rep.Retries)
				}
			},
		},
		{
			// One lane: at most one request in flight, so the split halves
			// follow each other and a single event rarely meets a 413.
			name:   "TooLarge",
			faults: emulator.Faults{TooLargeRate: 0.08},
			queue:  func(e *emu) { e.FailNext(2, 413) },
			flags:  []string{"--lanes", "1"},
			check: func(t *testing.T, st emulator.Stats, rep reportFile) {
				if st.Responses[413] < 2 {
					t.Errorf("413s %d", st.Responses[413])
				}
			},
		},
		{
			name:   "Throttled",
			faults: emulator.Faults{ThrottleRate: 0.25},
			queue:  func(e *emu) { e.FailNext(2, 429) },
			check: func(t *testing.T, st emulator.Stats, rep reportFile) {
				if st.Responses[429] < 2 || rep.Responses429 != st.Responses[429] {
					t.Errorf("emulator 429s %d, report 429s %d", st.Responses[429], rep.Responses429)
				}
			},
		},
		{
			name: "Mixed",
			faults: emulator.Faults{FailBeforeRate: 0.06, FailAfterRate: 0.06, UnavailableRate: 0.05, DropRate: 0.05,
				TooLargeRate: 0.02, ThrottleRate: 0.06, Latency: time.Millisecond, Jitter: 3 * time.Millisecond},
			queue: func(e *emu) { e.FailNextAfterIngest(1, 502); e.DropNext(1); e.FailNext(1, 429) },
			flags: []string{"--gzip"},
			check: func(t *testing.T, st emulator.Stats, rep reportFile) {
				if st.EventsDuplicate == 0 || st.Dropped == 0 || st.Responses[429] == 0 {
					t.Errorf("stats %+v: the queued faults did not all happen", st)
				}
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			files := []srcFile{
				genFile("a.jsonl", "a", 400, genOptions{devices: 25, noInsert: 4}),
				genFile("b.jsonl", "b", 200, genOptions{devices: 10}),
			}
			writeFiles(t, root, files...)
			good, _ := expect(root, nil, files...)
			e := startEmulator(t, emulator.Config{Faults: tt.faults, Seed: int64(100 + i)})
			tt.queue(e)
			w := newWorkDir(t)
			args := append(w.runArgs(e, "--api-key", e2eKey, "--throttle-pause", "50ms", "--max-attempts", "10", "--batch-size", "40"), tt.flags...)
			res := runMain(t, append(args, root)...)
			if res.code != ExitOK {
				t.Fatalf("exit code %d, want 0\n%s", res.code, res)
			}
			checkDelivered(t, e, good)
			checkDeadLetter(t, w.deadLetter, nil)
			rep := readReport(t, w.report)
			rep.checkInvariant(t)
			if rep.EventsAccepted != int64(len(good)) || rep.EventsRejected != 0 || rep.Status != "complete" {
				t.Errorf("report: status %s, accepted %d, rejected %d; want %d accepted", rep.Status, rep.EventsAccepted, rep.EventsRejected, len(good))
			}
			st := e.Stats()
			if got := rep.RequestsBatch + rep.RequestsHTTPAPI; got != st.RequestsBatch+st.RequestsHTTP {
				t.Errorf("report counts %d requests, the emulator saw %d", got, st.RequestsBatch+st.RequestsHTTP)
			}
			tt.check(t, st, rep)
		})
	}
}

// TestE2EFatalResponses: an invalid API key and a 403 stop the run at once
// with exit code 1 and a clear message that never shows the key.
func TestE2EFatalResponses(t *testing.T) {
	t.Parallel()
	const key = "e2e-wrong-key-5f1c9a"
	tests := []struct {
		name    string
		cfg     emulator.Config
		wantMsg string
	}{
		{"InvalidAPIKey", emulator.Config{APIKeys: []string{"the-right-key-000"}}, "Invalid API key"},
		{"Forbidden", emulator.Config{Faults: emulator.Faults{ForbiddenRate: 1}}, "403"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			writeFiles(t, root, genFile("a.jsonl", "a", 3000, genOptions{devices: 50}))
			e := startEmulator(t, tt.cfg)
			w := newWorkDir(t)
			res := runMain(t, append(w.runArgs(e, "--api-key", key, "--batch-size", "100"), root)...)
			if res.code != ExitFailed {
				t.Fatalf("exit code %d, want %d\n%s", res.code, ExitFailed, res)
			}
			if res.elapsed > 10*time.Second {
				t.Errorf("took %s to give up on a fatal response", res.elapsed)
			}
			if !strings.Contains(res.stderr, "backfill: ") || !strings.Contains(res.stderr, tt.wantMsg) {
				t.Errorf("stderr does not explain the failure (want %q):\n%s", tt.wantMsg, res.stderr)
			}
			for name, out := range map[string]string{"stdout": res.stdout, "stderr": res.stderr} {
				if strings.Contains(out, key) {
					t.Errorf("%s shows the API key:\n%s", name, out)
				}
			}
			st := e.Stats()
			if st.EventsAccepted != 0 {
				t.Errorf("emulator accepted %d events", st.EventsAccepted)
			}
			// Stopping at once: far fewer requests than the 30 chunks.
			if n := st.RequestsBatch + st.RequestsHTTP; n == 0 || n > 20 {
				t.Errorf("%d requests before stopping", n)
			}
			rep := readReport(t, w.report)
			if rep.Status != "failed" || strings.Contains(rep.Error, key) || rep.Error == "" {
				t.Errorf("report status %s error %q", rep.Status, rep.Error)
			}
			if data, err := os.ReadFile(filepath.Join(w.checkpoint, "state.json")); err == nil && strings.Contains(string(data), key) {
				t.Error("the checkpoint holds the API key")
			}
		})
	}
}
