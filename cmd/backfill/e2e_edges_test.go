package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backfillhq/backfill/emulator"
	"github.com/backfillhq/backfill/internal/testutil"
	"github.com/backfillhq/backfill/job"
	"github.com/backfillhq/backfill/uploader"
)

// TestE2EPasswordsInURLs: a password in the endpoint's userinfo, or inside
// an endpoint= query of a source, appears in no output and no file; the
// report's endpoint field keeps the host and masks the password.
func TestE2EPasswordsInURLs(t *testing.T) {
	const pw = "Pw-5ecret-e2e"
	t.Setenv("AMPLITUDE_API_KEY", e2eKey)
	t.Run("Endpoint", func(t *testing.T) {
		root := t.TempDir()
		writeFiles(t, root, genFile("a.jsonl", "a", 50, genOptions{}))
		e := startEmulator(t, emulator.Config{})
		w := newWorkDir(t)
		ep := strings.Replace(e.URL, "http://", "http://user:"+pw+"@", 1)
		args := w.runArgs(e, "--log-level", "debug")
		args[2] = ep // --endpoint's value
		res := runMain(t, append(args, root)...)
		if res.code != ExitOK {
			t.Fatalf("exit %d, want 0\n%s", res.code, res)
		}
		if strings.Contains(res.stdout+res.stderr, pw) {
			t.Fatalf("output shows the password:\n%s", res)
		}
		grepSecret(t, w.dir, pw)
		rep := readReport(t, w.report)
		if want := strings.Replace(e.URL, "http://", "http://user:[REDACTED]@", 1); rep.Endpoint != want {
			t.Fatalf("report endpoint = %q, want %q", rep.Endpoint, want)
		}
	})
	t.Run("FatalSourceError", func(t *testing.T) {
		testutil.IsolateAWS(t)
		e := startEmulator(t, emulator.Config{})
		w := newWorkDir(t)
		// Nothing listens on port 1: listing fails, and the fatal error
		// names the source.
		src := "s3://bucket/prefix/?endpoint=http://user:" + pw + "@127.0.0.1:1&use_path_style=true&region=us-east-1"
		res := runMain(t, append(w.runArgs(e, "--max-attempts", "1"), src)...)
		if res.code == ExitOK {
			t.Fatalf("exit 0 listing an unreachable store\n%s", res)
		}
		if strings.Contains(res.stdout+res.stderr, pw) {
			t.Fatalf("output shows the password:\n%s", res)
		}
		if !strings.Contains(res.stderr, "127.0.0.1:1") {
			t.Fatalf("the error does not say where it listed (want 127.0.0.1:1, so the query was read as a query):\n%s", res)
		}
		grepSecret(t, w.dir, pw)
	})
	t.Run("SourceQueryInCheckpoint", func(t *testing.T) {
		testutil.IsolateAWS(t)
		s3 := testutil.StartS3(t, "bucket")
		s3.Put(t, "bucket", "prefix/a.jsonl", []byte(`{"event_type":"e","device_id":"device-00001","time":1704067200000}`+"\n"))
		e := startEmulator(t, emulator.Config{})
		w := newWorkDir(t)
		// gofakes3 ignores the basic credentials of the endpoint.
		src := strings.Replace(s3.RawURL("bucket", "prefix/"), "endpoint=http://", "endpoint=http://user:"+pw+"@", 1)
		res := runMain(t, append(w.runArgs(e), src)...)
		if res.code != ExitOK {
			t.Fatalf("exit %d\n%s", res.code, res)
		}
		if strings.Contains(res.stdout+res.stderr, pw) {
			t.Fatalf("output shows the secret:\n%s", res)
		}
		grepSecret(t, w.dir, pw) // the checkpoint's job description, the report
	})
}

// grepSecret fails when a file under dir contains s.
func grepSecret(t *testing.T, dir, s string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if data, err := os.ReadFile(p); err == nil && strings.Contains(string(data), s) {
			t.Errorf("%s contains %q", p, s)
		}
		return nil
	})
}

// TestE2EShortKey: with a one-letter key, the invalid-key message masks
// the key and leaves every other "k" alone (it used to replace them all).
func TestE2EShortKey(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, genFile("a.jsonl", "a", 20, genOptions{}))
	e := startEmulator(t, emulator.Config{APIKeys: []string{"another-key-000000"}})
	w := newWorkDir(t)
	t.Setenv("AMPLITUDE_API_KEY", "k")
	res := runMain(t, append(w.runArgs(e), root)...)
	if res.code != ExitFailed {
		t.Fatalf("exit %d, want %d\n%s", res.code, ExitFailed, res)
	}
	if !strings.Contains(res.stderr, "Invalid API key: [REDACTED]") {
		t.Fatalf("stderr does not mask the key:\n%s", res)
	}
	if strings.Contains(res.stdout+res.stderr, "[REDACTED]ey") || !strings.Contains(res.stderr, "key") {
		t.Fatalf("the short key garbled the message:\n%s", res)
	}
}

// TestE2EUntrustedObjectNames: object names with a newline and an ESC
// reach the summary and the errors escaped: no forged line, no control
// sequence on the terminal.
func TestE2EUntrustedObjectNames(t *testing.T) {
	root := t.TempDir()
	evil := "a\nlevel=ERROR msg=forged\x1b[2J.jsonl"
	line := `{"event_type":"e","device_id":"device-00001","time":1704067200000}` + "\n"
	if err := os.WriteFile(filepath.Join(root, evil), []byte(line+"{broken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := startEmulator(t, emulator.Config{})
	w := newWorkDir(t)
	t.Setenv("AMPLITUDE_API_KEY", e2eKey)
	res := runMain(t, append(w.runArgs(e), root)...)
	if res.code != ExitRejected {
		t.Fatalf("exit %d, want %d\n%s", res.code, ExitRejected, res)
	}
	out := res.stdout + res.stderr
	if strings.Contains(out, "\x1b") {
		t.Fatalf("output holds a raw ESC:\n%q", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "level=ERROR msg=forged") {
			t.Fatalf("an object name forged a line:\n%s", out)
		}
	}
	if !strings.Contains(res.stdout, `a\nlevel=ERROR`) {
		t.Fatalf("the summary does not show the escaped name:\n%s", res)
	}
}

// TestE2EEntriesNotRead: a FIFO, a dangling symbolic link and a link loop
// named *.jsonl in a source folder are logged, listed in the report as
// failed objects with their reason, and make the run exit 1 (they used to
// be skipped silently with exit 0). The readable file is sent in full.
func TestE2EEntriesNotRead(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, genFile("a.jsonl", "a", 30, genOptions{}))
	if err := syscall.Mkfifo(filepath.Join(root, "fifo.jsonl"), 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for name, target := range map[string]string{"dangling.jsonl": "missing.jsonl", "loop.jsonl": "loop.jsonl"} {
		if err := os.Symlink(filepath.Join(root, target), filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	// A link to a directory is not followed (no loops), and is reported too.
	if err := os.Mkdir(filepath.Join(root, "..", "elsewhere"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "..", "elsewhere"), filepath.Join(root, "linked-dir")); err != nil {
		t.Fatal(err)
	}
	e := startEmulator(t, emulator.Config{})
	w := newWorkDir(t)
	t.Setenv("AMPLITUDE_API_KEY", e2eKey)
	res := runMain(t, append(w.runArgs(e), root)...)
	if res.code != ExitFailed {
		t.Fatalf("exit %d, want %d\n%s", res.code, ExitFailed, res)
	}
	rep := readReport(t, w.report)
	if rep.EventsAccepted != 30 || rep.ObjectsFailed != 4 {
		t.Fatalf("accepted %d, objects failed %d; want 30 and 4\n%s", rep.EventsAccepted, rep.ObjectsFailed, res)
	}
	want := map[string]string{"fifo.jsonl": "named pipe", "dangling.jsonl": "dangling symbolic link", "loop.jsonl": "symbolic link loop",
		"linked-dir": "symbolic link to a directory"}
	for _, o := range rep.Objects {
		reason, ok := want[filepath.Base(o.URL)]
		if !ok {
			continue
		}
		if o.Status != "failed" || !strings.Contains(o.Error, reason) {
			t.Errorf("report object %s: status %s, error %q; want failed with %q", o.URL, o.Status, o.Error, reason)
		}
		if !strings.Contains(res.stderr, reason) {
			t.Errorf("no log line says %q:\n%s", reason, res.stderr)
		}
		delete(want, filepath.Base(o.URL))
	}
	if len(want) > 0 {
		t.Errorf("not in the report: %v", want)
	}
}

// TestE2ECorruptNewestCheckpoint: after a finished job, a corrupt newest
// checkpoint falls back to the previous one, which the final save made
// equal to it: the rerun sends nothing again (it used to re-send the whole
// job) and the log says exactly what the fallback costs (resend=0; see
// checkpoint's TestJournalFallbackResend for a fallback that costs sends).
func TestE2ECorruptNewestCheckpoint(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, genFile("a.jsonl", "a", 1000, genOptions{}))
	e := startEmulator(t, emulator.Config{})
	w := newWorkDir(t)
	t.Setenv("AMPLITUDE_API_KEY", e2eKey)
	args := append(w.runArgs(e), root)
	if res := runMain(t, args...); res.code != ExitOK {
		t.Fatalf("first run: exit %d\n%s", res.code, res)
	}
	before := e.Stats()
	if err := os.WriteFile(filepath.Join(w.checkpoint, "state.json"), []byte(`{"version":1,"objects":{`), 0o644); err != nil {
		t.Fatal(err)
	}
	res := runMain(t, args...)
	if res.code != ExitOK {
		t.Fatalf("rerun: exit %d\n%s", res.code, res)
	}
	after := e.Stats()
	if n := after.RequestsBatch + after.RequestsHTTP - before.RequestsBatch - before.RequestsHTTP; n != 0 {
		t.Fatalf("the rerun sent %d requests, want 0 (the previous checkpoint should hold the final state)\n%s", n, res)
	}
	if !strings.Contains(res.stderr, "resuming from the previous checkpoint") || !strings.Contains(res.stderr, " resend=0") ||
		!strings.Contains(res.stderr, "previous_settled=1000") || !strings.Contains(res.stderr, "acknowledged_since=") {
		t.Fatalf("the log does not say what the fallback costs:\n%s", res.stderr)
	}
}

// TestE2EFlagsAfterSources: flags may follow the sources, as the README's
// `backfill run gs://bucket/ga4-export/ --preset ga4` writes them (they
// used to be taken for sources); "--" still ends the flags.
func TestE2EFlagsAfterSources(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, genFile("a.jsonl", "a", 20, genOptions{}))
	t.Setenv("AMPLITUDE_API_KEY", "")
	res := runMain(t, "plan", root, "--eps", "111")
	if res.code != ExitOK || !strings.Contains(res.stdout, "at 111 events/s per id") {
		t.Fatalf("plan SOURCE --eps 111: want exit 0 at 111 events/s\n%s", res)
	}
	res = runMain(t, "plan", "--", root, "--eps")
	if res.code == ExitOK || !strings.Contains(res.stderr, "--eps") {
		t.Fatalf("after --, --eps must be a source\n%s", res)
	}
}

// TestE2EServerNeverAnswers: when every attempt fails without an answer,
// the run ends with exit 1 and says the retries were exhausted, with the
// checkpoint saved; it does not claim ids are parked (exit 4).
func TestE2EServerNeverAnswers(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, genFile("a.jsonl", "a", 30, genOptions{}))
	e := startEmulator(t, emulator.Config{Faults: emulator.Faults{DropRate: 1}})
	w := newWorkDir(t)
	t.Setenv("AMPLITUDE_API_KEY", e2eKey)
	res := runMain(t, append(w.runArgs(e, "--max-attempts", "2"), root)...)
	if res.code != ExitFailed {
		t.Fatalf("exit %d, want %d\n%s", res.code, ExitFailed, res)
	}
	if !strings.Contains(res.stderr, "retries exhausted") || strings.Contains(res.stdout+res.stderr, "parked") {
		t.Fatalf("the message does not say retries were exhausted (or says parked):\n%s", res)
	}
	if rep := readReport(t, w.report); rep.Status != "failed" {
		t.Fatalf("report status %q, want failed", rep.Status)
	}
}

// TestE2EServerTimesOut: a server that accepts connections and never
// answers makes every attempt time out. The run fails with retries
// exhausted (exit 1), not "incomplete: parked" (exit 4): a client timeout
// unwraps to context.DeadlineExceeded and was taken for the run's end.
func TestE2EServerTimesOut(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, genFile("a.jsonl", "a", 30, genOptions{}))
	e := startEmulator(t, emulator.Config{Faults: emulator.Faults{Latency: time.Second}})
	w := newWorkDir(t)
	cfg := job.Config{
		Sources: []string{root}, Endpoint: e.URL, APIKey: e2eKey, MaxAttempts: 2,
		HTTPClient: &http.Client{Timeout: 100 * time.Millisecond},
		Checkpoint: w.checkpoint, DeadLetter: w.deadLetter, ReportFile: w.report, Linger: 20 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	}
	ctx := context.Background()
	rep, err := job.Run(ctx, ctx, cfg)
	if rep == nil {
		t.Fatalf("no report: %v", err)
	}
	if rep.Status != job.StatusFailed || !errors.Is(err, uploader.ErrRetriesExhausted) {
		t.Fatalf("status %s, err %v; want failed with retries exhausted", rep.Status, err)
	}
	var stderr strings.Builder
	if code := exitCode(err, &stderr, e2eKey); code != ExitFailed || !strings.Contains(stderr.String(), "retries exhausted") {
		t.Fatalf("exit %d, message %q; want %d saying retries exhausted", code, stderr.String(), ExitFailed)
	}
}
