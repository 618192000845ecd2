package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/emulator"
)

// grepTree fails when any file under dir contains s.
func grepTree(t *testing.T, dir, s string) int {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		if strings.Contains(string(data), s) {
			t.Errorf("%s contains the API key", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestE2EKeyRedaction runs with a distinctive key through successes,
// retries, 429s, server-side rejections and an invalid-key 400, with debug
// logs in text and JSON: the key appears in no output and no file.
// Subtests set AMPLITUDE_API_KEY, so nothing here runs in parallel.
func TestE2EKeyRedaction(t *testing.T) {
	const key = "KEY-e2e-9c1f2b7d4a6e0358"
	const flagWarning = "the API key was passed as a flag"
	tests := []struct {
		name     string
		env      bool // pass the key as AMPLITUDE_API_KEY, not --api-key
		cfg      emulator.Config
		flags    []string
		wantCode int
	}{
		{"FlagDebugJSON", false, emulator.Config{Silenced: []string{"device-silenced-01"}}, []string{"--log-level", "debug", "--log-format", "json", "--progress", "plain"}, ExitRejected},
		{"EnvDebugText", true, emulator.Config{Silenced: []string{"device-silenced-01"}}, []string{"--log-level", "debug", "--gzip"}, ExitRejected},
		{"InvalidKeyJSON", false, emulator.Config{APIKeys: []string{"another-key-000000"}}, []string{"--log-level", "debug", "--log-format", "json"}, ExitFailed},
		{"InvalidKeyEnvText", true, emulator.Config{APIKeys: []string{"another-key-000000"}}, []string{"--log-level", "debug", "--route", "http"}, ExitFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root,
				genFile("a.jsonl", "a", 300, genOptions{invalid: true, noInsert: 2}),
				genFile("b.jsonl", "b", 20, genOptions{hotDevice: "device-silenced-01"}))
			e := startEmulator(t, tt.cfg)
			e.FailNext(1, 500)
			e.FailNext(1, 429)
			e.FailNextAfterIngest(1, 502)
			w := newWorkDir(t)
			args := w.runArgs(e, append([]string{"--throttle-pause", "10ms"}, tt.flags...)...)
			if tt.env {
				t.Setenv("AMPLITUDE_API_KEY", key)
			} else {
				t.Setenv("AMPLITUDE_API_KEY", "")
				args = append(args, "--api-key", key)
			}
			res := runMain(t, append(args, root)...)
			if res.code != tt.wantCode {
				t.Fatalf("exit code %d, want %d\n%s", res.code, tt.wantCode, res)
			}
			for name, out := range map[string]string{"stdout": res.stdout, "stderr": res.stderr} {
				if strings.Contains(out, key) {
					t.Errorf("%s shows the API key:\n%s", name, out)
				}
			}
			// Non-200 bodies are logged (and an invalid-key body echoes the
			// key): make sure those paths ran.
			wantLog := "amplitude response"
			if tt.wantCode == ExitFailed {
				wantLog = "Invalid API key"
			}
			if !strings.Contains(res.stderr, wantLog) {
				t.Errorf("stderr has no %q line, so the test proves little:\n%s", wantLog, res.stderr)
			}
			if got := strings.Contains(res.stderr, flagWarning); got == tt.env {
				t.Errorf("flag warning shown=%v with the key in the environment=%v:\n%s", got, tt.env, res.stderr)
			}
			if strings.Contains(strings.Join(tt.flags, " "), "json") {
				for _, line := range strings.Split(strings.TrimSpace(res.stderr), "\n") {
					if strings.HasPrefix(line, "{") && !json.Valid([]byte(line)) {
						t.Errorf("--log-format json wrote a line that is not JSON: %s", line)
					}
				}
			}
			if n := grepTree(t, w.dir, key); n < 3 {
				t.Errorf("only %d files written (checkpoint, report, dead-letter expected)", n)
			}
			if tt.wantCode == ExitRejected {
				rejectedByServer := false
				for _, e := range readDeadLetter(t, w.deadLetter) {
					rejectedByServer = rejectedByServer || e.Stage == "server"
				}
				if !rejectedByServer {
					t.Error("no server-side rejection in the dead-letter file: the silenced device was not exercised")
				}
			}
		})
	}
}

// planEPS extracts the per-id pace from `backfill plan` output.
var planEPS = regexp.MustCompile(`at (\d+) events/s per id`)

// TestE2EConfigPrecedence checks flags > BACKFILL_* environment > --config
// file > defaults, through `backfill plan` (which prints the pace) and
// through a run's checkpoint (whose job description holds min_id_length).
func TestE2EConfigPrecedence(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, genFile("a.jsonl", "a", 200, genOptions{devices: 3}))
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "backfill.yaml")
	if err := os.WriteFile(cfgFile, []byte("eps: 111\nmin_id_length: 7\ncsv-types:\n  time: int\nsources:\n  - "+root+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AMPLITUDE_API_KEY", "")
	t.Setenv("BACKFILL_CONFIG", "")
	t.Setenv("BACKFILL_EPS", "")
	t.Setenv("BACKFILL_MIN_ID_LENGTH", "")

	t.Run("Plan", func(t *testing.T) {
		tests := []struct {
			name string
			env  map[string]string
			args []string
			want string
		}{
			{"Default", nil, []string{"plan", root}, "300"},
			{"File", nil, []string{"plan", "--config", cfgFile, root}, "111"},
			{"FileSources", nil, []string{"plan", "--config", cfgFile}, "111"},
			{"ConfigFromEnv", map[string]string{"BACKFILL_CONFIG": cfgFile}, []string{"plan", root}, "111"},
			{"EnvOverFile", map[string]string{"BACKFILL_EPS": "222"}, []string{"plan", "--config", cfgFile, root}, "222"},
			{"FlagOverEnv", map[string]string{"BACKFILL_EPS": "222"}, []string{"plan", "--config", cfgFile, "--eps", "333", root}, "333"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				for k, v := range tt.env {
					t.Setenv(k, v)
				}
				res := runMain(t, tt.args...)
				if res.code != ExitOK {
					t.Fatalf("exit code %d\n%s", res.code, res)
				}
				m := planEPS.FindStringSubmatch(res.stdout)
				if m == nil || m[1] != tt.want {
					t.Fatalf("pace %v, want %s:\n%s", m, tt.want, res.stdout)
				}
			})
		}
	})

	t.Run("Run", func(t *testing.T) {
		tests := []struct {
			name string
			env  map[string]string
			args []string
			want string
		}{
			{"Default", nil, nil, "0"},
			{"File", nil, []string{"--config", cfgFile}, "7"},
			{"EnvOverFile", map[string]string{"BACKFILL_MIN_ID_LENGTH": "6"}, []string{"--config", cfgFile}, "6"},
			{"FlagOverEnv", map[string]string{"BACKFILL_MIN_ID_LENGTH": "6"}, []string{"--config", cfgFile, "--min-id-length", "8"}, "8"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Setenv("AMPLITUDE_API_KEY", e2eKey) // the documented way: no flag warning
				for k, v := range tt.env {
					t.Setenv(k, v)
				}
				e := startEmulator(t, emulator.Config{})
				w := newWorkDir(t)
				res := runMain(t, append(append(w.runArgs(e), tt.args...), root)...)
				if res.code != ExitOK {
					t.Fatalf("exit code %d\n%s", res.code, res)
				}
				if strings.Contains(res.stderr, "passed as a flag") {
					t.Errorf("warning about a flag key with AMPLITUDE_API_KEY:\n%s", res.stderr)
				}
				var st struct {
					Job map[string]string `json:"job"`
				}
				data, err := os.ReadFile(filepath.Join(w.checkpoint, "state.json"))
				if err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(data, &st); err != nil {
					t.Fatal(err)
				}
				if got := st.Job["min_id_length"]; got != tt.want {
					t.Errorf("checkpoint job min_id_length %q, want %s (job %v)", got, tt.want, st.Job)
				}
				if got := e.Stats().EventsAccepted; got != 200 {
					t.Errorf("emulator accepted %d events, want 200", got)
				}
			})
		}
	})

	t.Run("Errors", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(bad, []byte("epss: 5\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			env  map[string]string
			args []string
			want string
		}{
			{"UnknownFileKey", nil, []string{"plan", "--config", bad, root}, "unknown keys: epss"},
			{"MissingFile", nil, []string{"plan", "--config", filepath.Join(dir, "nope.yaml"), root}, "config"},
			{"BadEnvValue", map[string]string{"BACKFILL_EPS": "fast"}, []string{"plan", root}, "BACKFILL_EPS"},
			{"NoAPIKey", nil, []string{"run", "--checkpoint", filepath.Join(dir, "ck"), root}, "no API key"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				for k, v := range tt.env {
					t.Setenv(k, v)
				}
				res := runMain(t, tt.args...)
				if res.code != ExitUsage || !strings.Contains(res.stderr, tt.want) {
					t.Errorf("exit code %d, want %d with %q\n%s", res.code, ExitUsage, tt.want, res)
				}
			})
		}
	})
}

// TestE2EExitCodes checks the documented exit codes through Main.
func TestE2EExitCodes(t *testing.T) {
	t.Parallel()
	good := t.TempDir()
	writeFiles(t, good, genFile("a.jsonl", "a", 50, genOptions{}))
	mixed := t.TempDir()
	writeFiles(t, mixed, genFile("a.jsonl", "a", 60, genOptions{invalid: true}))
	tests := []struct {
		name   string
		args   func(w workDir, e *emu) []string
		cfg    emulator.Config
		code   int
		stderr string
	}{
		{"Success", func(w workDir, e *emu) []string { return append(w.runArgs(e, "--api-key", e2eKey), good) }, emulator.Config{}, ExitOK, ""},
		{"Rejected", func(w workDir, e *emu) []string { return append(w.runArgs(e, "--api-key", e2eKey), mixed) }, emulator.Config{}, ExitRejected, ""},
		{"Forbidden", func(w workDir, e *emu) []string { return append(w.runArgs(e, "--api-key", e2eKey), good) }, emulator.Config{Faults: emulator.Faults{ForbiddenRate: 1}}, ExitFailed, "403"},
		{"MissingSource", func(w workDir, e *emu) []string {
			return append(w.runArgs(e, "--api-key", e2eKey), filepath.Join(good, "nope.jsonl"))
		}, emulator.Config{}, ExitFailed, "nope.jsonl"},
		{"NoArgs", func(workDir, *emu) []string { return nil }, emulator.Config{}, ExitUsage, "Usage"},
		{"UnknownCommand", func(workDir, *emu) []string { return []string{"frobnicate"} }, emulator.Config{}, ExitUsage, "unknown command"},
		{"UnknownFlag", func(w workDir, e *emu) []string { return append(w.runArgs(e, "--api-key", e2eKey, "--nope"), good) }, emulator.Config{}, ExitUsage, "nope"},
		{"NoSource", func(w workDir, e *emu) []string { return w.runArgs(e, "--api-key", e2eKey) }, emulator.Config{}, ExitUsage, "no SOURCE"},
		{"BadRoute", func(w workDir, e *emu) []string {
			return append(w.runArgs(e, "--api-key", e2eKey, "--route", "sideways"), good)
		}, emulator.Config{}, ExitUsage, "--route"},
		{"EPSAboveLimit", func(w workDir, e *emu) []string {
			return append(w.runArgs(e, "--api-key", e2eKey, "--eps", "5000"), good)
		}, emulator.Config{}, ExitUsage, "--eps"},
		{"BadRegion", func(w workDir, e *emu) []string {
			return append(w.runArgs(e, "--api-key", e2eKey, "--region", "mars"), good)
		}, emulator.Config{}, ExitUsage, "--region"},
		{"BadShard", func(w workDir, e *emu) []string {
			return append(w.runArgs(e, "--api-key", e2eKey, "--shard", "3/2"), good)
		}, emulator.Config{}, ExitUsage, "--shard"},
		{"Help", func(workDir, *emu) []string { return []string{"run", "-h"} }, emulator.Config{}, ExitOK, "Exit codes"},
		{"Version", func(workDir, *emu) []string { return []string{"version"} }, emulator.Config{}, ExitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := startEmulator(t, tt.cfg)
			w := newWorkDir(t)
			res := runMain(t, tt.args(w, e)...)
			if res.code != tt.code {
				t.Fatalf("exit code %d, want %d\n%s", res.code, tt.code, res)
			}
			if !strings.Contains(res.stderr, tt.stderr) {
				t.Errorf("stderr does not mention %q:\n%s", tt.stderr, res.stderr)
			}
			if tt.code == ExitUsage {
				if st := e.Stats(); st.RequestsBatch+st.RequestsHTTP != 0 {
					t.Errorf("a usage error sent %d requests", st.RequestsBatch+st.RequestsHTTP)
				}
			}
		})
	}
}

// TestE2ENoSend checks that --dry-run, plan and validate read and describe
// the input but send nothing.
func TestE2ENoSend(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	files := []srcFile{
		genFile("2024-01.jsonl", "h1", 400, genOptions{invalid: true}),
		genFile("recent/dt=2024-05-01/part-0.jsonl", "r1", 30, genOptions{}),
		genFile("recent/dt=2024-05-02/part-0.jsonl", "r2", 30, genOptions{}),
	}
	writeFiles(t, root, files...)
	clean := t.TempDir()
	writeFiles(t, clean, genFile("a.jsonl", "c", 40, genOptions{}))
	_, bad := expect(root, nil, files...)
	e := startEmulator(t, emulator.Config{})
	w := newWorkDir(t)
	tail := []string{"--tail-events", "100"}

	// counts matches "rejected: N" or "N invalid" (the layout may change).
	counts := func(valid, invalid int) []string {
		return []string{fmt.Sprintf(`(?i)(valid:?\s+%d\b|\b%d valid)`, valid, valid), fmt.Sprintf(`(?i)((rejected|invalid):?\s+%d\b|\b%d (rejected|invalid))`, invalid, invalid)}
	}
	tests := []struct {
		name  string
		args  []string
		code  int
		wants []string // regular expressions
	}{
		{"DryRun", append(append(w.runArgs(e, "--api-key", e2eKey, "--dry-run"), tail...), root), ExitOK,
			[]string{`1\s+batch\s.*` + regexp.QuoteMeta(fileURL(filepath.Join(root, "2024-01.jsonl"))), `httpapi\s.*dt=2024-05-01/part-0.jsonl`, `httpapi\s.*dt=2024-05-02/part-0.jsonl`, `tail: 2 trailing partitions \(60 events\)`,
				`(?m)^\s+` + regexp.QuoteMeta(fileURL(filepath.Join(root, "recent", "dt=2024-05-01"))+"/ (1 objects, ") + `[0-9.]+ KiB, 30 events\)`}},
		{"Plan", append(append([]string{"plan", "--eps", "50"}, tail...), root), ExitOK,
			append(counts(420, len(bad)), `batch\s.*2024-01.jsonl`, `httpapi\s.*dt=2024-05-02`, "lower bound", "at 50 events/s per id")},
		{"Validate", []string{"validate", root}, ExitRejected,
			append(counts(420, len(bad)), "missing event_type", `2024-01.jsonl line 8\b`, "reserved event_type", "first mapped events")},
		{"ValidateClean", []string{"validate", clean}, ExitOK, counts(40, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runMain(t, tt.args...)
			if res.code != tt.code {
				t.Fatalf("exit code %d, want %d\n%s", res.code, tt.code, res)
			}
			for _, want := range tt.wants {
				if !regexp.MustCompile(want).MatchString(res.stdout) {
					t.Errorf("output lacks %q:\n%s", want, res.stdout)
				}
			}
		})
	}
	if st := e.Stats(); st.RequestsBatch+st.RequestsHTTP+st.RequestsOther != 0 {
		t.Errorf("the emulator got %d requests", st.RequestsBatch+st.RequestsHTTP+st.RequestsOther)
	}
	for _, p := range []string{w.checkpoint, w.report, w.deadLetter} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s was written by a run that sends nothing (%v)", p, err)
		}
	}
}
