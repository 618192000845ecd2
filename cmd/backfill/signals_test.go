package main

import (
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backfillhq/backfill/emulator"
	"github.com/backfillhq/backfill/internal/testutil"
)

func TestSignalPolicy(t *testing.T) {
	type sig struct {
		s  os.Signal
		at time.Duration
	}
	tests := []struct {
		name     string
		sigs     []sig
		wantHard bool
	}{
		{"OneCtrlC", []sig{{os.Interrupt, 0}}, false},
		// GNU timeout: SIGTERM to the child, then to its process group.
		{"TimeoutBurst", []sig{{syscall.SIGTERM, 0}, {syscall.SIGTERM, 20 * time.Microsecond}}, false},
		{"GroupCtrlCBurst", []sig{{os.Interrupt, 0}, {os.Interrupt, 5 * time.Millisecond}, {syscall.SIGTERM, 100 * time.Millisecond}}, false},
		{"SecondCtrlC", []sig{{os.Interrupt, 0}, {os.Interrupt, 2 * time.Second}}, true},
		{"BurstThenCtrlC", []sig{{syscall.SIGTERM, 0}, {syscall.SIGTERM, time.Microsecond}, {os.Interrupt, time.Second}}, true},
		{"SecondTermLater", []sig{{syscall.SIGTERM, 0}, {syscall.SIGTERM, 30 * time.Second}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t0 := time.Unix(1e9, 0)
			ch := make(chan os.Signal)
			times := make(chan time.Time) // each signal's time, taken by the policy's now()
			soft, hard := 0, 0
			done := make(chan struct{})
			go func() {
				signalPolicy(ch, func() time.Time { return <-times }, func() { soft++ }, func() { hard++ }, io.Discard)
				close(done)
			}()
			for _, s := range tt.sigs {
				select {
				case ch <- s.s:
					times <- t0.Add(s.at)
				case <-done:
				}
			}
			close(ch)
			<-done
			if soft != 1 || (hard == 1) != tt.wantHard {
				t.Fatalf("soft %d, hard %d; want soft 1, hard %v", soft, hard, tt.wantHard)
			}
		})
	}
}

// TestSignalsOnProcess runs the real process against a slow emulator and
// sends it two stop signals. SIGTERM twice, milliseconds apart, as GNU
// timeout does (to the child, then to its group), stops gracefully: the
// requests in flight finish (it used to abort them as a second Ctrl-C).
// A second signal after the burst window aborts, and says so.
func TestSignalsOnProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	tests := []struct {
		name      string
		second    os.Signal
		gap       time.Duration
		want, not string
	}{
		{"TimeoutBurst", syscall.SIGTERM, 5 * time.Millisecond, "interrupted: the requests in flight finished", "aborted:"},
		{"SecondCtrlC", os.Interrupt, burstWindow + 300*time.Millisecond, "aborted: the requests in flight were cancelled", "interrupted:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, genFile("a.jsonl", "a", 2000, genOptions{}))
			es, err := emulator.New(emulator.Config{Faults: emulator.Faults{Latency: 1500 * time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(es)
			t.Cleanup(ts.Close)
			dir := t.TempDir()
			w := workDir{dir: dir, checkpoint: filepath.Join(dir, "state"), report: filepath.Join(dir, "report.json"), deadLetter: filepath.Join(dir, "dl.jsonl")}
			cmd := mainCommand(t, dir, append(w.runArgs(&emu{Server: es, URL: ts.URL}, "--batch-size", "100"), root)...)
			cmd.Env = append(cmd.Env, "AMPLITUDE_API_KEY="+e2eKey)
			var stderr testutil.SyncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Wait until requests are in flight (the emulator holds each 1.5 s).
			deadline := time.Now().Add(30 * time.Second)
			for es.Stats().RequestsBatch == 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond)
			// Pending signals of one kind merge in the kernel, so two sent
			// back to back may arrive as one: leave the process time to
			// take the first.
			cmd.Process.Signal(syscall.SIGTERM)
			time.Sleep(tt.gap)
			cmd.Process.Signal(tt.second)
			cmd.Wait()
			out := stderr.String()
			if code := cmd.ProcessState.ExitCode(); code != ExitInterrupted {
				t.Fatalf("exit %d, want %d\n%s", code, ExitInterrupted, out)
			}
			if !strings.Contains(out, tt.want) || strings.Contains(out, tt.not) {
				t.Fatalf("stderr does not say %q (or says %q):\n%s", tt.want, tt.not, out)
			}
		})
	}
}
