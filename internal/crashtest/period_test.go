//go:build unix

package crashtest_test

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill/internal/testutil"
)

// killPeriod is how long each run of TestKillPeriod lives once started.
const killPeriod = 2 * time.Second

// periodLatency slows the emulator so that the job needs several periods.
const periodLatency = 100 * time.Millisecond

// maxPeriodRuns gives up on a job that does not progress.
const maxPeriodRuns = 30

// TestKillPeriod SIGKILLs every run killPeriod after its start (after it
// took a bucket lock over) until the job completes, with the default
// checkpoint interval (5 s; 2.5 s on a bucket, for its lock's TTL), so no
// run lives to its first periodic save:
// the job must still finish, and each kill must leave more settled than
// the one before.
func TestKillPeriod(t *testing.T) {
	t.Parallel() // mostly waiting for the emulator's latency
	ck := filepath.Join(t.TempDir(), "ck")
	killPeriodically(t, nil, []string{"--checkpoint", ck}, loader(ck), nil)
}

// TestKillPeriodS3 is TestKillPeriod with the checkpoint in a bucket.
func TestKillPeriodS3(t *testing.T) {
	if testing.Short() {
		t.Skip("the bucket variant is skipped under -short")
	}
	ck := testutil.StartS3(t, "state").URL("state", "job1")
	// The lock's heartbeat is the checkpoint save: the TTL must be 3
	// intervals. Still no run lives to its first periodic save.
	killPeriodically(t, testutil.AWSEnv, []string{"--checkpoint", ck, "--checkpoint-every", "2500ms", "--lock-ttl", "7500ms", "--lock-wait", "30s"},
		loader(ck), bucketLock(t, ck))
}

func killPeriodically(t *testing.T, env, flags []string, load loadFunc, staleLock func() bool) {
	dir := t.TempDir()
	dl, rep := filepath.Join(dir, "dead-letter.jsonl"), filepath.Join(dir, "report.json")
	srv, url := startEmulator(t, periodLatency)
	j := newJob(t, url, env, append(flags, "--lanes", strconv.Itoa(lanes), "--batch-size", strconv.Itoa(batchSize),
		"--dead-letter", dl, "--report", rep)...)
	var settled []int64
	kills := 0
	for run := 1; ; run++ {
		if run > maxPeriodRuns {
			t.Fatalf("the job did not complete in %d runs killed every %v; settled after each kill: %v", maxPeriodRuns, killPeriod, settled)
		}
		wait := staleLock != nil && staleLock()
		p := j.start()
		if wait {
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(p.stderr.String(), tookOver) && !p.exited() {
				if time.Now().After(deadline) {
					t.Fatalf("run %d did not take the stale lock over within 30s; stderr:\n%s", run, tail(p.stderr.String()))
				}
				time.Sleep(time.Millisecond)
			}
		}
		select {
		case <-p.done:
		case <-time.After(killPeriod):
		}
		if !p.kill() {
			if code := p.wait(t, time.Second); !completed(code) {
				t.Fatalf("run %d exited %d; stderr:\n%s", run, code, tail(p.stderr.String()))
			}
			break
		}
		kills++
		srv.idle(t)
		st, err := load()
		if err != nil {
			t.Fatalf("load the checkpoint after kill %d: %v", kills, err)
		}
		var n int64
		for _, o := range st.Objects {
			n += o.Read
		}
		if len(settled) > 0 && n <= settled[len(settled)-1] {
			t.Errorf("kill %d left %d records settled, no more than kill %d did (%d)", kills, n, kills-1, settled[len(settled)-1])
		}
		settled = append(settled, n)
	}
	if kills < 2 {
		t.Errorf("only %d kills before the job completed; the job is too short to test the kill period", kills)
	}
	checkDelivery(t, input, srv, dl, rep)
	r := readReport(t, rep)
	if bound := int64(kills) * window; srv.Stats().EventsDuplicate > bound {
		t.Errorf("the emulator saw %d re-sent events, want at most kills × window = %d", srv.Stats().EventsDuplicate, bound)
	}
	t.Logf("%d kills, one every %v; settled after each: %v; re-sent %d (report: %d)", kills, killPeriod, settled, srv.Stats().EventsDuplicate, r.EventsResent)
}
