package main

import (
	"bytes"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/backfillhq/backfill/emulator"
)

// TestMainProcess is not a test: the terminal tests re-run the test binary
// as the backfill command, with the arguments after "--".
func TestMainProcess(t *testing.T) {
	if os.Getenv("BACKFILL_TEST_MAIN") != "1" {
		t.Skip("helper process for the terminal tests")
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Args = append([]string{"backfill"}, args...)
	main()
}

func mainCommand(t *testing.T, dir string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestMainProcess$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "BACKFILL_TEST_MAIN=1")
	cmd.Dir = dir
	return cmd
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// The demo on a real (pseudo-)terminal draws the progress bar, which ends
// at 100% with the status line.
func TestProgressBarOnTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process on a pseudo-terminal")
	}
	dir := t.TempDir()
	cmd := mainCommand(t, dir, "demo", "--dir", filepath.Join(dir, "demo"))
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		io.Copy(&out, f) // ends with EIO when the child exits
		close(done)
	}()
	werr := cmd.Wait()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("terminal output did not end")
	}
	// The demo's fixtures hold invalid records on purpose; dead-lettering
	// them is the demo working, so it exits 0 (make demo must succeed).
	if code := cmd.ProcessState.ExitCode(); code != ExitOK {
		t.Fatalf("demo exit %d (%v), want %d\n%s", code, werr, ExitOK, out.String())
	}
	screen := ansi.ReplaceAllString(out.String(), "")
	for _, want := range []string{"100%", "objects 6/6", "accepted 4500", "backfill complete"} {
		if !strings.Contains(screen, want) {
			t.Errorf("terminal output lacks %q:\n%s", want, screen)
		}
	}
	if !strings.Contains(out.String(), "\r") {
		t.Error("no carriage returns: the bar was not redrawn in place")
	}
}

// Off a terminal the same run prints structured progress lines every
// --progress-interval, and no bar.
func TestProgressPlainLines(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	emu, err := emulator.New(emulator.Config{Faults: emulator.Faults{Latency: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	defer srv.Close()
	dir := t.TempDir()
	if err := extractDemo(filepath.Join(dir, "in")); err != nil {
		t.Fatal(err)
	}
	cmd := mainCommand(t, dir, "run", "--endpoint", srv.URL, "--checkpoint", filepath.Join(dir, "ck"),
		"--progress-interval", "20ms", "--batch-size", "100", "--lanes", "2", filepath.Join(dir, "in"))
	cmd.Env = append(cmd.Env, "AMPLITUDE_API_KEY=plain-test-key")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != ExitRejected {
		t.Fatalf("exit %d (%v), want %d\n%s\n%s", code, err, ExitRejected, stdout.String(), stderr.String())
	}
	lines := regexp.MustCompile(`(?m)^time=\S+ level=INFO msg=progress .*events_accepted=\d+.*$`).FindAllString(stderr.String(), -1)
	if len(lines) < 3 {
		t.Fatalf("%d progress lines, want several:\n%s", len(lines), stderr.String())
	}
	if !strings.Contains(lines[len(lines)-1], "final=true") || !strings.Contains(lines[len(lines)-1], "events_accepted=4500") {
		t.Fatalf("last progress line %q", lines[len(lines)-1])
	}
	if strings.Contains(stderr.String(), "\r") {
		t.Fatal("carriage returns off a terminal")
	}
}
