//go:build unix

package crashtest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/emulator"

	"github.com/backfillhq/backfill/internal/testutil"
)

// Shared by every test: the binary and the input, built once.
var (
	binPath string
	input   *inputSet
)

// eventsPerFile is the number of valid events of each large input file; the
// input holds about 4.05× as many events in all.
const eventsPerFile = 10_000

// apiKey is a fake key; the emulator accepts any.
const apiKey = "crashtest-key-0123456789"

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "crashtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	binPath = filepath.Join(tmp, "backfill")
	if err := testutil.BuildBackfill(binPath); err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
		return 1
	}
	dir := filepath.Join(tmp, "input")
	if err := os.Mkdir(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
		return 1
	}
	if input, err = genInput(dir, eventsPerFile); err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
		return 1
	}
	return m.Run()
}

// seed returns the kill-schedule seed: CRASHTEST_SEED or the clock.
func seed(t *testing.T) uint64 {
	t.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("CRASHTEST_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CRASHTEST_SEED=%q: %v", v, err)
		}
		s = n
	}
	t.Logf("seed %d (replay with CRASHTEST_SEED=%d)", s, s)
	return s
}

// emu is an in-process emulator that knows how many requests it is
// serving.
type emu struct {
	*emulator.Server
	inflight atomic.Int64
}

func (e *emu) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.inflight.Add(1)
	defer e.inflight.Add(-1)
	e.Server.ServeHTTP(w, r)
}

// idle waits until no request is being served: after a kill, the requests
// the emulator was ingesting are done (and the others, waiting out their
// latency, are dropped as their connection closed).
func (e *emu) idle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.inflight.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the emulator is still serving %d requests 10s after the client died", e.inflight.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// startEmulator serves an in-process emulator with latency per request.
func startEmulator(t *testing.T, latency time.Duration) (*emu, string) {
	return startEmulatorEPS(t, latency, 0)
}

// startEmulatorEPS is startEmulator with the per-id limit of /batch at eps
// events/s over 30 s (0: Amplitude's).
func startEmulatorEPS(t *testing.T, latency time.Duration, eps int) (*emu, string) {
	t.Helper()
	srv, err := emulator.New(emulator.Config{
		Silenced: []string{silencedDevice},
		Faults:   emulator.Faults{Latency: latency},
		BatchEPS: eps,
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &emu{Server: srv}
	ts := httptest.NewServer(e)
	t.Cleanup(ts.Close)
	return e, ts.URL
}

// job is one backfill command line, run again and again.
type job struct {
	t    *testing.T
	in   *inputSet
	args []string
	env  []string
}

// newJob returns `backfill run` over the shared input with the given
// extra flags (the checkpoint among them).
func newJob(t *testing.T, endpoint string, extraEnv []string, flags ...string) *job {
	return newJobFor(t, input, endpoint, extraEnv, flags...)
}

// newJobFor is newJob over another input.
func newJobFor(t *testing.T, in *inputSet, endpoint string, extraEnv []string, flags ...string) *job {
	args := []string{"run",
		"--endpoint", endpoint,
		"--route", "batch",
		"--csv-types", csvTypes(),
		"--progress", "none",
		"--log-level", "warn",
	}
	args = append(args, flags...)
	args = append(args, in.dir)
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "BACKFILL_") || strings.HasPrefix(k, "AMPLITUDE_") || strings.HasPrefix(k, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "AMPLITUDE_API_KEY="+apiKey)
	env = append(env, extraEnv...)
	return &job{t: t, in: in, args: args, env: env}
}

// with returns a copy of j with more flags (before the source).
func (j *job) with(flags ...string) *job {
	n := *j
	src := j.args[len(j.args)-1]
	n.args = append(append(append([]string(nil), j.args[:len(j.args)-1]...), flags...), src)
	return &n
}

// proc is a started child process.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *testutil.SyncBuffer
	done           chan struct{}
	err            error
}

func (j *job) start() *proc {
	j.t.Helper()
	cmd := exec.Command(binPath, j.args...)
	cmd.Env = j.env
	p := &proc{cmd: cmd, stdout: new(testutil.SyncBuffer), stderr: new(testutil.SyncBuffer), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		j.t.Fatalf("start backfill: %v", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	j.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// exited reports whether the process ended by itself.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill SIGKILLs the process unless it already ended; it reports whether
// the kill hit a live process.
func (p *proc) kill() bool {
	select {
	case <-p.done:
		return false
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// wait waits for the process to end by itself, at most d, and returns
// its exit code.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.cmd.Process.Signal(syscall.SIGQUIT) // goroutine dump on stderr
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		t.Fatalf("backfill did not finish within %v (hang?); stderr:\n%s", d, tail(p.stderr.String()))
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		t.Fatalf("wait: %v", p.err)
	}
	return p.cmd.ProcessState.ExitCode()
}

// run runs the job to its end and returns the exit code.
func (j *job) run(d time.Duration) (int, *proc) {
	j.t.Helper()
	p := j.start()
	return p.wait(j.t, d), p
}

func tail(s string) string {
	const max = 6000
	if len(s) > max {
		return "..." + s[len(s)-max:]
	}
	return s
}

// completed reports whether an exit code means the job is finished: 0 (all
// accepted) or 3 (finished with dead-lettered records).
func completed(code int) bool { return code == 0 || code == 3 }

// finalSave in a kill plan kills the run the moment the emulator has
// accepted every valid event: while the run writes its final checkpoint
// and report.
const finalSave = time.Duration(-1)

// afterHTTP in a kill plan kills the run while the emulator holds its
// first /2/httpapi request of the run in its latency (the emulator then
// drops it); ingestedHTTP kills it just after the emulator ingested it,
// before the run made its acknowledgement durable.
const (
	afterHTTP    = time.Duration(-2)
	ingestedHTTP = time.Duration(-3)
)

// killPlan returns the kill delays of n kills, deterministic per rng: a
// third while the process starts, lists and locks (under 40 ms), a third
// in the rest of its first second, the others in its second second; the
// last kill is at the final save.
func killPlan(rng *rand.Rand, n int) []time.Duration {
	d := make([]time.Duration, n-1)
	for i := range d {
		switch i % 3 {
		case 0:
			d[i] = time.Duration(rng.Int64N(int64(40 * time.Millisecond)))
		case 1:
			d[i] = 40*time.Millisecond + time.Duration(rng.Int64N(int64(960*time.Millisecond)))
		default:
			d[i] = time.Second + time.Duration(rng.Int64N(int64(time.Second)))
		}
	}
	rng.Shuffle(len(d), func(a, b int) { d[a], d[b] = d[b], d[a] })
	return append(d, finalSave)
}

// killStat is what one kill left behind.
type killStat struct {
	after time.Duration // since the process started
	// lost counts the events the emulator had accepted when the process was
	// killed that the checkpoint the next run resumes from does not hold as
	// settled: the next runs send them again.
	lost int
	// fresh counts the lost events first accepted during the killed run
	// (the others were lost by earlier kills and not re-sent yet).
	fresh int
	// lag is the time from the snapshot of that checkpoint (or from the
	// process start, if there was none) to the kill.
	lag time.Duration
	// checkpoint tells whether a checkpoint existed after the kill.
	checkpoint bool
	// tempLeft tells whether the kill interrupted a local checkpoint write.
	tempLeft bool
	// final tells whether it was the kill at the final save.
	final bool
	// settled is the number of records the checkpoint (with its journal)
	// holds as settled after the kill.
	settled int64
}

// crashOutcome is what a crash loop did.
type crashOutcome struct {
	kills []killStat
	runs  int
	code  int // exit code of the completing run
	// resent is the emulator's duplicate count during each run: run i+1
	// re-sends what kill i lost.
	resent []int64
	stderr string // of the completing run
	// capped counts the kills planned late that were moved early because
	// most of the job was done.
	capped int
}

// loadFunc loads the job's newest checkpoint, as the next run would.
type loadFunc func() (*checkpoint.State, error)

// loader loads the checkpoint at loc (a directory or a bucket URL) and
// applies its journal, as the next run would.
func loader(loc string) loadFunc {
	return func() (*checkpoint.State, error) {
		st, err := checkpoint.Open(context.Background(), loc, checkpoint.Options{Logger: quietLog})
		if err != nil {
			return nil, err
		}
		defer st.Close()
		s, _, err := st.Recover(context.Background())
		return s, err
	}
}

var quietLog = slog.New(slog.DiscardHandler)

// lostAcks returns the accepted insert_ids st does not hold as settled (st
// may be nil: no checkpoint).
func lostAcks(in *inputSet, st *checkpoint.State, accepted map[string]bool) map[string]bool {
	lost := maps.Clone(accepted)
	if st == nil {
		return lost
	}
	for url, o := range st.Objects {
		for r, id := range in.ids[filepath.Base(url)] {
			if id != "" && o.Skip(int64(r)) {
				delete(lost, id)
			}
		}
	}
	return lost
}

func acceptedIDs(srv *emu) map[string]bool {
	evs := srv.Events()
	m := make(map[string]bool, len(evs))
	for _, ev := range evs {
		m[ev.InsertID] = true
	}
	return m
}

// tookOver is what a run logs when it takes over the lock of a killed run.
const tookOver = "took over a stale checkpoint lock"

// crashLoop starts the job and SIGKILLs it after each delay of plan,
// restarting it each time; then it lets the job run to completion. A run
// that ends by itself before the plan is used up must have completed the
// job, and the loop stops there. After each kill it loads the checkpoint
// with load and counts the accepted events it lost. ckDir, when set, is
// inspected for temp files of an interrupted checkpoint write.
//
// staleLock, when set, reports whether a killed run left a lock that the
// next run must wait to go stale (bucket locks); the next kill's delay then
// starts once the run logged that it took the lock over.
func crashLoop(t *testing.T, j *job, srv *emu, plan []time.Duration, load loadFunc, ckDir string, staleLock func() bool) crashOutcome {
	t.Helper()
	var out crashOutcome
	dups := func() int64 { return srv.Stats().EventsDuplicate }
	prevAccepted := map[string]bool{}
	for _, d := range plan {
		if d >= 0 && srv.Stats().EventsAccepted >= int64(len(j.in.valid))*4/5 {
			// Keep the job from completing before the plan is used up on a
			// fast machine: near the end, kill while the process starts.
			d %= 30 * time.Millisecond
			out.capped++
		}
		before := dups()
		wait := staleLock != nil && staleLock()
		started := time.Now()
		p := j.start()
		out.runs++
		if wait {
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(p.stderr.String(), tookOver) && !p.exited() {
				if time.Now().After(deadline) {
					t.Fatalf("run %d did not take the stale lock over within 20s; stderr:\n%s", out.runs, tail(p.stderr.String()))
				}
				time.Sleep(time.Millisecond)
			}
			started = time.Now()
		}
		switch d {
		case afterHTTP, ingestedHTTP:
			deadline := time.Now().Add(90 * time.Second)
			before := srv.Stats().RequestsHTTP
			for srv.Stats().RequestsHTTP == before && !p.exited() {
				if time.Now().After(deadline) {
					t.Fatalf("run %d sent no /2/httpapi request within 90s; stderr:\n%s", out.runs, tail(p.stderr.String()))
				}
				time.Sleep(100 * time.Microsecond)
			}
			// The emulator ingests it after its latency.
			if d == afterHTTP {
				time.Sleep(latency / 2)
			} else {
				time.Sleep(latency + time.Millisecond)
			}
		case finalSave:
			deadline := time.Now().Add(90 * time.Second)
			for srv.Stats().EventsAccepted < int64(len(j.in.valid)) && !p.exited() {
				if time.Now().After(deadline) {
					p.cmd.Process.Signal(syscall.SIGQUIT) // goroutine dump on stderr
					time.Sleep(time.Second)
					t.Fatalf("run %d did not get every event accepted within 90s (%d of %d); stderr:\n%s", out.runs, srv.Stats().EventsAccepted, len(j.in.valid), tail(p.stderr.String()))
				}
				time.Sleep(100 * time.Microsecond)
			}
		default:
			select {
			case <-p.done:
			case <-time.After(d):
			}
		}
		killedAt := time.Now()
		if p.kill() {
			k := killStat{after: killedAt.Sub(started), final: d == finalSave}
			if ckDir != "" {
				m, _ := filepath.Glob(filepath.Join(ckDir, "state.json.tmp-*"))
				k.tempLeft = len(m) > 0
			}
			out.resent = append(out.resent, dups()-before)
			srv.idle(t)
			accepted := acceptedIDs(srv)
			st, err := load()
			switch {
			case errors.Is(err, checkpoint.ErrNoCheckpoint):
				st, k.lag = nil, k.after
			case err != nil:
				t.Fatalf("load the checkpoint after kill %d: %v", len(out.kills)+1, err)
			default:
				k.checkpoint = true
				k.lag = killedAt.Sub(st.Updated)
			}
			if st != nil {
				for _, o := range st.Objects {
					k.settled += o.Read
				}
			}
			lost := lostAcks(j.in, st, accepted)
			k.lost = len(lost)
			for id := range lost {
				if !prevAccepted[id] {
					k.fresh++
				}
			}
			prevAccepted = accepted
			out.kills = append(out.kills, k)
			continue
		}
		code := p.wait(t, time.Second)
		if !completed(code) {
			t.Fatalf("run %d exited %d by itself before its kill; stderr:\n%s", out.runs, code, tail(p.stderr.String()))
		}
		out.code, out.stderr = code, p.stderr.String()
		out.resent = append(out.resent, dups()-before)
		return out
	}
	before := dups()
	code, p := j.run(90 * time.Second)
	out.runs++
	out.resent = append(out.resent, dups()-before)
	if !completed(code) {
		t.Fatalf("final run exited %d; stderr:\n%s", code, tail(p.stderr.String()))
	}
	out.code, out.stderr = code, p.stderr.String()
	return out
}

// report is the part of report.json the tests check.
type report struct {
	Status         string `json:"status"`
	EventsRead     int64  `json:"events_read"`
	EventsAccepted int64  `json:"events_accepted"`
	EventsRejected int64  `json:"events_rejected"`
	EventsPending  int64  `json:"events_pending"`
	EventsResent   int64  `json:"events_resent"`
	Responses429   int64  `json:"responses_429"`
	Runs           int    `json:"runs"`
}

func readReport(t *testing.T, path string) report {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read report: %v", err)
	}
	var r report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("parse report %s: %v", path, err)
	}
	return r
}

// checkDelivery asserts exactly-once delivery: the emulator accepted every
// valid event once (by insert_id) and nothing else, every invalid record is
// in the dead-letter file exactly once, and the report adds up.
func checkDelivery(t *testing.T, in *inputSet, srv *emu, deadLetter, reportPath string) {
	t.Helper()
	st := srv.Stats()
	if got, want := st.EventsAccepted, int64(len(in.valid)); got != want {
		t.Errorf("emulator accepted %d distinct events, want %d (the valid input records)", got, want)
	}
	seen := make(map[string]bool, len(in.valid))
	var unexpected, twice int
	for _, ev := range srv.Events() {
		switch {
		case !in.valid[ev.InsertID]:
			unexpected++
			if unexpected <= 5 {
				t.Errorf("emulator accepted an unexpected event: %s", ev.Event)
			}
		case seen[ev.InsertID]:
			twice++
			if twice <= 5 {
				t.Errorf("insert_id %s accepted twice", ev.InsertID)
			}
		}
		seen[ev.InsertID] = true
	}
	var missing []string
	for id := range in.valid {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 || unexpected > 0 || twice > 0 {
		t.Errorf("accepted events: %d missing (e.g. %.5q), %d unexpected, %d twice", len(missing), missing, unexpected, twice)
	}

	f, err := os.Open(deadLetter)
	if err != nil {
		t.Fatalf("open dead-letter file: %v", err)
	}
	defer f.Close()
	got := map[recKey]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	lines := 0
	for sc.Scan() {
		lines++
		var e struct {
			Object string `json:"object"`
			Record int64  `json:"record"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("dead-letter line %d: %v: %s", lines, err, sc.Bytes())
		}
		got[recKey{filepath.Base(e.Object), e.Record}]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if lines != len(in.invalid) {
		t.Errorf("dead-letter file has %d lines, want %d (the invalid records)", lines, len(in.invalid))
	}
	for k, n := range got {
		if n > 1 {
			t.Errorf("dead-letter file has %s record %d %d times", k.file, k.record, n)
		}
		if _, ok := in.invalid[k]; !ok {
			t.Errorf("dead-letter file has %s record %d, which is valid", k.file, k.record)
		}
	}
	for k, why := range in.invalid {
		if got[k] == 0 {
			t.Errorf("dead-letter file lacks %s record %d (%s)", k.file, k.record, why)
		}
	}

	r := readReport(t, reportPath)
	total := int64(in.total)
	if r.EventsRead != total || r.EventsAccepted+r.EventsRejected != r.EventsRead {
		t.Errorf("report: events_read %d, accepted %d + rejected %d; want read = accepted + rejected = %d input records",
			r.EventsRead, r.EventsAccepted, r.EventsRejected, total)
	}
	if r.EventsAccepted != int64(len(in.valid)) || r.EventsRejected != int64(len(in.invalid)) {
		t.Errorf("report: accepted %d, rejected %d; want %d and %d", r.EventsAccepted, r.EventsRejected, len(in.valid), len(in.invalid))
	}
	if r.EventsPending != 0 {
		t.Errorf("report: events_pending %d, want 0", r.EventsPending)
	}
}
