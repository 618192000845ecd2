package memtest_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backfillhq/backfill/emulator"
)

// The emulator runs in a child process (this test binary again, see
// TestMain) so that the heap measured is the pipeline's alone: the
// emulator's request parsing and dedupe set would blur it. It keeps no
// events, has every limit off and is reset before each run; its dedupe
// stays exact, so a duplicate shows in its counters.

// childEnv makes the test binary serve the emulator instead of testing.
const childEnv = "MEMTEST_EMULATOR_CHILD"

var discardLogger = slog.New(slog.DiscardHandler)

// ctlClient talks to the child's control endpoints without keep-alive, so
// it leaves no connection goroutines behind (checkGoroutines counts them).
var ctlClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		serveEmulator()
		return
	}
	code := m.Run()
	stopChild()
	os.Exit(code)
}

// serveEmulator is the child: it prints the emulator's URL and serves
// until its stdin is closed (the parent exited or is done).
func serveEmulator() {
	s, err := emulator.New(emulator.Config{
		BatchEPS: emulator.Unlimited, HTTPEPS: emulator.Unlimited, DailyQuota: emulator.Unlimited,
		DiscardEvents: true,
		Logger:        discardLogger,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ts := httptest.NewServer(s)
	fmt.Println(ts.URL)
	io.Copy(io.Discard, os.Stdin)
	ts.Close()
}

var child struct {
	once  sync.Once
	cmd   *exec.Cmd
	stdin io.Closer
	url   string
	err   error
}

// emulatorURL starts the child emulator on first use and returns its URL.
func emulatorURL(t *testing.T) string {
	t.Helper()
	child.once.Do(func() { child.url, child.err = startChild() })
	if child.err != nil {
		t.Fatal(child.err)
	}
	return child.url
}

func startChild() (string, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start emulator process: %w", err)
	}
	child.cmd, child.stdin = cmd, stdin
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("emulator process: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// stopChild closes the child's stdin and waits for it to exit, killing it
// after 10 s.
func stopChild() {
	if child.cmd == nil {
		return
	}
	child.stdin.Close()
	done := make(chan struct{})
	go func() { child.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		child.cmd.Process.Kill()
		<-done
	}
}

// emulatorCall does method on the child's path and decodes its JSON answer
// into out (when not nil).
func emulatorCall(t *testing.T, method, path string, out any) {
	t.Helper()
	req, err := http.NewRequest(method, emulatorURL(t)+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ctlClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s %v", method, path, resp.StatusCode, body, err)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// freshEmulator resets the child emulator and returns its URL.
func freshEmulator(t *testing.T) string {
	t.Helper()
	emulatorCall(t, http.MethodPost, emulator.PathReset, nil)
	return emulatorURL(t)
}

// emulatorStats returns the child emulator's counters.
func emulatorStats(t *testing.T) emulator.Stats {
	t.Helper()
	var st emulator.Stats
	emulatorCall(t, http.MethodGet, emulator.PathStats, &st)
	return st
}
