package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// usage is what one child process cost, from its os.ProcessState
// (getrusage of the child).
type usage struct {
	Wall   float64 `json:"wall_s"`
	CPU    float64 `json:"cpu_s"` // user + sys
	User   float64 `json:"user_s"`
	Sys    float64 `json:"sys_s"`
	MaxRSS int64   `json:"max_rss_bytes"` // ru_maxrss
}

func usageOf(ps *os.ProcessState, wall time.Duration) usage {
	u := usage{Wall: wall.Seconds(), User: ps.UserTime().Seconds(), Sys: ps.SystemTime().Seconds()}
	u.CPU = u.User + u.Sys
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		u.MaxRSS = ru.Maxrss * 1024 // KiB on Linux
	}
	return u
}

// runChild runs name with args to completion and measures it. stdout is
// returned; stderr is kept for the error message. After timeout (if > 0)
// the child gets SIGINT, then SIGKILL 10 s later. A non-zero exit is an
// error carrying the tail of stderr (the usage is still returned).
func runChild(timeout time.Duration, env []string, name string, args ...string) ([]byte, usage, error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Env = append(os.Environ(), env...)
	var out, errb strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &tailWriter{w: &errb, max: 4096}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, usage{}, err
	}
	err := cmd.Wait()
	u := usageOf(cmd.ProcessState, time.Since(start))
	if err != nil {
		return []byte(out.String()), u, fmt.Errorf("%s %s: %w: %s", name, args[0], err, strings.TrimSpace(errb.String()))
	}
	return []byte(out.String()), u, nil
}

// tailWriter keeps the last max bytes written.
type tailWriter struct {
	w   *strings.Builder
	max int
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.w.Write(p)
	if s := t.w.String(); len(s) > t.max {
		t.w.Reset()
		t.w.WriteString(s[len(s)-t.max:])
	}
	return len(p), nil
}

// emulator is a `backfill emulator` child process.
type emulator struct {
	cmd   *exec.Cmd
	url   string
	start time.Time
}

// emuStats is the part of GET /_emulator/stats the benchmark uses.
type emuStats struct {
	RequestsBatch   int64           `json:"requests_batch"`
	RequestsHTTP    int64           `json:"requests_httpapi"`
	EventsAccepted  int64           `json:"events_accepted"`
	EventsDuplicate int64           `json:"events_duplicate"`
	EventsRejected  int64           `json:"events_rejected"`
	Responses       map[int]int64   `json:"responses"`
	MaxWindowEPS    float64         `json:"max_window_eps"`
	Extra           json.RawMessage `json:"-"`
}

// startEmulator starts `bin emulator` with args and reads its URL.
func startEmulator(bin string, args ...string) (*emulator, error) {
	cmd := exec.Command(bin, append([]string{"emulator", "--addr", "127.0.0.1:0", "--keep-events=false"}, args...)...)
	cmd.Stderr = io.Discard
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	e := &emulator{cmd: cmd, start: time.Now()}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("emulator: read URL: %w", err)
	}
	e.url = strings.TrimSpace(line)
	go io.Copy(io.Discard, out)
	return e, nil
}

func (e *emulator) stats() (emuStats, error) {
	var st emuStats
	resp, err := http.Get(e.url + "/_emulator/stats")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("emulator stats: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// stop interrupts the emulator and returns what it cost over its life.
func (e *emulator) stop() (usage, error) {
	if err := e.cmd.Process.Signal(os.Interrupt); err != nil {
		return usage{}, err
	}
	done := make(chan error, 1)
	go func() { done <- e.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return usage{}, err
		}
	case <-time.After(15 * time.Second):
		e.cmd.Process.Kill()
		<-done
	}
	return usageOf(e.cmd.ProcessState, time.Since(e.start)), nil
}
