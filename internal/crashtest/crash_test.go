//go:build unix

package crashtest_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob"

	"github.com/backfillhq/backfill/checkpoint"

	"github.com/backfillhq/backfill/internal/testutil"
)

// Settings of the crash runs.
const (
	lanes     = 4
	batchSize = 200
	// window is the in-flight window: each lane has at most one request in
	// flight, of at most batchSize events.
	window = lanes * batchSize
	// latency is the emulator's delay per request: it keeps a run long
	// enough to be killed at many points.
	latency         = 20 * time.Millisecond
	checkpointEvery = 50 * time.Millisecond
)

func crashFlags() []string {
	return []string{
		"--checkpoint-every", checkpointEvery.String(),
		"--lanes", strconv.Itoa(lanes),
		"--batch-size", strconv.Itoa(batchSize),
	}
}

// checkResent asserts the re-send bounds and logs the measured re-sends.
//
// A kill makes the next runs re-send the events the emulator had accepted
// that the checkpoint they resume from does not hold as settled: lost. A run
// sends each record at most once and skips what its checkpoint holds as
// settled, so the emulator's duplicates during run i+1 are at most the
// events lost by kill i; more means settled records were sent again.
//
// The lost events are the ones lost by earlier kills that the killed run
// had not re-sent yet, and fresh ones, first accepted in the killed run. The
// fresh ones are, per lane, the request in flight at the kill and the
// requests acked after the checkpoint's snapshot: each request takes at
// least latency, so in the lag L from snapshot to kill a lane gets at most
// L/latency + 1 acks, plus the request in flight when the snapshot was
// taken. So per kill
//
//	fresh ≤ window × (floor(L/latency) + 4)
//
// with window = lanes × batch size (the in-flight window) and two windows of
// slack because the checkpoint's timestamp is taken a little after its
// snapshot (after fsyncing the dead-letter file).
//
// The simpler "re-sent ≤ kills × window" does not hold: the events acked
// since the last checkpoint save (every --checkpoint-every, plus the save's
// own duration) are re-sent too. It is logged for comparison.
func checkResent(t *testing.T, srv *emu, out crashOutcome) {
	t.Helper()
	dups := srv.Stats().EventsDuplicate
	var worst int64
	var temps, withCk int
	for i, k := range out.kills {
		worst = max(worst, out.resent[i+1])
		if k.tempLeft {
			temps++
		}
		if k.checkpoint {
			withCk++
		}
		bound := window * (int(k.lag/latency) + 4)
		t.Logf("kill %2d after %4dms: checkpoint %-5v lag %4dms, lost %5d events (%5d fresh, bound %5d), next run re-sent %5d%s",
			i+1, k.after.Milliseconds(), k.checkpoint, k.lag.Milliseconds(), k.lost, k.fresh, bound, out.resent[i+1],
			map[bool]string{true: "; killed during a checkpoint write"}[k.tempLeft])
		if k.fresh > bound {
			t.Errorf("kill %d: %d events accepted in the killed run are not in the checkpoint, %v after its snapshot; want at most %d (window %d × (lag/latency %d + 4))",
				i+1, k.fresh, k.lag, bound, window, int(k.lag/latency))
		}
		if out.resent[i+1] > int64(k.lost) {
			t.Errorf("run %d re-sent %d events, more than the %d accepted events its checkpoint did not hold: settled records were sent again",
				i+2, out.resent[i+1], k.lost)
		}
	}
	if out.resent[0] != 0 {
		t.Errorf("the first run sent %d duplicate events", out.resent[0])
	}
	t.Logf("%d kills over %d runs (%d after a first checkpoint, %d during a checkpoint write, %d moved early near the end); events re-sent: %d in all, at most %d after one kill; kills × window = %d × %d = %d",
		len(out.kills), out.runs, withCk, temps, out.capped, dups, worst, len(out.kills), window, int64(len(out.kills))*window)
}

func minKills() int {
	if testing.Short() {
		return 10
	}
	return 12
}

// TestCrashLocal SIGKILLs runs with a local checkpoint directory.
func TestCrashLocal(t *testing.T) {
	rng := rand.New(rand.NewPCG(seed(t), 0))
	srv, url := startEmulator(t, latency)
	ck := filepath.Join(t.TempDir(), "ck")
	j := newJob(t, url, nil, append(crashFlags(), "--checkpoint", ck)...)

	out := crashLoop(t, j, srv, killPlan(rng, minKills()), loader(ck), ck, nil)
	if len(out.kills) < minKills() {
		t.Errorf("only %d kills hit a running process, want at least %d", len(out.kills), minKills())
	}
	if out.code != 3 {
		t.Errorf("final exit code %d, want 3 (completed with dead-lettered records)", out.code)
	}
	checkDelivery(t, input, srv, filepath.Join(ck, "dead-letter.jsonl"), filepath.Join(ck, "report.json"))
	checkResent(t, srv, out)
}

// TestCrashBeforeFirstCheckpoint kills a fresh run after it wrote
// dead-letter lines but before its first periodic checkpoint: the rerun
// must resume (not refuse the dead-letter file as unaccounted for) and
// dead-letter every record exactly once.
func TestCrashBeforeFirstCheckpoint(t *testing.T) {
	in, err := genBadFirst(t.TempDir(), 2000, 5000)
	if err != nil {
		t.Fatal(err)
	}
	srv, url := startEmulator(t, latency)
	ck := filepath.Join(t.TempDir(), "ck")
	dl := filepath.Join(ck, "dead-letter.jsonl")
	j := newJobFor(t, in, url, nil, "--checkpoint", ck, "--checkpoint-every", "1h", "--lanes", "4", "--batch-size", "200")

	p := j.start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if fi, err := os.Stat(dl); err == nil && fi.Size() > 0 {
			break
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("the run wrote no dead-letter line before ending or within 30s; stderr:\n%s", tail(p.stderr.String()))
		}
		time.Sleep(time.Millisecond)
	}
	if !p.kill() {
		t.Fatalf("the run ended before it could be killed; stderr:\n%s", tail(p.stderr.String()))
	}
	code, p := j.run(60 * time.Second)
	if code != 3 {
		t.Fatalf("rerun after the kill exited %d, want 3; stderr:\n%s", code, tail(p.stderr.String()))
	}
	checkDelivery(t, in, srv, dl, filepath.Join(ck, "report.json"))
}

// TestCrashS3 SIGKILLs runs whose checkpoint is in an S3 bucket.
func TestCrashS3(t *testing.T) {
	if testing.Short() {
		t.Skip("the bucket variant is skipped under -short")
	}
	rng := rand.New(rand.NewPCG(seed(t), 0))
	srv, url := startEmulator(t, latency)
	ck := testutil.StartS3(t, "state").URL("state", "job1")
	dir := t.TempDir()
	dl, rep := filepath.Join(dir, "dead-letter.jsonl"), filepath.Join(dir, "report.json")
	// A bucket lock cannot tell a dead owner from a live one: the killed
	// run's lock goes stale after --lock-ttl without a heartbeat (one per
	// checkpoint save), and --lock-wait makes the rerun wait for that.
	j := newJob(t, url, testutil.AWSEnv, append(crashFlags(), "--checkpoint", ck, "--dead-letter", dl, "--report", rep,
		"--lock-ttl", "400ms", "--lock-wait", "15s")...)
	bucket, err := blob.OpenBucket(context.Background(), strings.Replace(ck, "/job1?", "?", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	staleLock := func() bool {
		ok, err := bucket.Exists(context.Background(), "job1/"+checkpoint.LockObject)
		if err != nil {
			t.Fatalf("look for the lock object: %v", err)
		}
		return ok
	}

	out := crashLoop(t, j, srv, killPlan(rng, minKills()), loader(ck), "", staleLock)
	if len(out.kills) < minKills() {
		t.Errorf("only %d kills hit a running process, want at least %d", len(out.kills), minKills())
	}
	if out.code != 3 {
		t.Errorf("final exit code %d, want 3 (completed with dead-lettered records)", out.code)
	}
	checkDelivery(t, input, srv, dl, rep)
	checkResent(t, srv, out)
}
