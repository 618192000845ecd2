//go:build unix

package crashtest_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill/internal/testutil"
)

// TestLock runs two jobs on one checkpoint at once: the second fails fast
// saying the checkpoint is locked and the first is unaffected. Then the
// first is SIGKILLed and a rerun takes its stale lock over and completes.
func TestLock(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, dir string) (env, flags []string)
	}{
		{"Dir", func(t *testing.T, dir string) ([]string, []string) {
			return nil, []string{"--checkpoint", filepath.Join(dir, "ck")}
		}},
		{"S3", func(t *testing.T, dir string) ([]string, []string) {
			if testing.Short() {
				t.Skip("the bucket variant is skipped under -short")
			}
			return testutil.AWSEnv, []string{"--checkpoint", testutil.StartS3(t, "state").URL("state", "job1"), "--lock-ttl", "1s", "--lock-wait", "15s"}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			env, flags := tt.setup(t, dir)
			dl, rep := filepath.Join(dir, "dead-letter.jsonl"), filepath.Join(dir, "report.json")
			srv, url := startEmulator(t, latency)
			j := newJob(t, url, env, append(append(crashFlags(), flags...), "--dead-letter", dl, "--report", rep)...)

			first := j.start()
			waitAccepted(t, srv, first, 2000)
			// The second run must not wait for the lock.
			start := time.Now()
			code, second := j.with("--lock-wait", "0s").run(30 * time.Second)
			if code != 1 && code != 2 {
				t.Errorf("second run exited %d, want 1 or 2; stderr:\n%s", code, tail(second.stderr.String()))
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("second run took %v to fail, want it to fail fast", d)
			}
			if msg := second.stderr.String(); !strings.Contains(msg, "locked") || !strings.Contains(msg, "another backfill run") {
				t.Errorf("second run's error does not say the checkpoint is locked by another run:\n%s", tail(msg))
			}
			t.Logf("second run: exit %d after %v: %s", code, time.Since(start).Round(time.Millisecond), strings.TrimSpace(second.stderr.String()))
			if first.exited() {
				t.Fatalf("the first run ended while the second tried the lock; stderr:\n%s", tail(first.stderr.String()))
			}

			if !first.kill() {
				t.Fatal("the first run ended before it could be killed")
			}
			code, third := j.run(90 * time.Second)
			if code != 3 {
				t.Fatalf("the run after the kill exited %d, want 3; stderr:\n%s", code, tail(third.stderr.String()))
			}
			if !strings.Contains(third.stderr.String(), tookOver) {
				t.Errorf("the run after the kill does not report taking the stale lock over:\n%s", tail(third.stderr.String()))
			}
			checkDelivery(t, input, srv, dl, rep)
		})
	}
}
