//go:build unix

package storagee2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backfillhq/backfill/emulator"
	"github.com/backfillhq/backfill/fixtures/fixturegen"
	"github.com/backfillhq/backfill/internal/storagesrv"
	"github.com/backfillhq/backfill/internal/testutil"
)

const apiKey = "storage-e2e-key-0123456789"

// binPath is the backfill binary, built once by TestMain.
var binPath string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	tmp, err := os.MkdirTemp("", "storagee2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "storagee2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	binPath = filepath.Join(tmp, "backfill")
	if err := testutil.BuildBackfill(binPath); err != nil {
		fmt.Fprintln(os.Stderr, "storagee2e:", err)
		return 1
	}
	return m.Run()
}

// startServer starts kind or skips the test (fails it under
// BACKFILL_STORAGE_REQUIRE=1) when it is not installed.
func startServer(t *testing.T, kind string) *storagesrv.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("storage e2e: skipped in -short mode")
	}
	s, err := storagesrv.Start(kind, t.TempDir())
	if errors.Is(err, storagesrv.ErrNotInstalled) {
		if os.Getenv("BACKFILL_STORAGE_REQUIRE") == "1" {
			t.Fatalf("storage e2e: %v", err)
		}
		t.Skipf("storage e2e SKIPPED: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// object is one generated input object.
type object struct {
	key    string
	format string
	seed   int64
}

// eventsPerObject keeps each run a few seconds long against a slowed
// emulator, so that a kill and a server restart land mid-run.
const eventsPerObject = 150

var formats = []string{"jsonl", "jsonl.gz", "csv", "parquet"}

// layout returns the hive-style objects of days [first, last] of January
// 2024: one object per format per day under events/dt=YYYY-MM-DD/.
func layout(first, last int) []object {
	var objs []object
	for d := first; d <= last; d++ {
		for i, f := range formats {
			objs = append(objs, object{
				key:    fmt.Sprintf("events/dt=2024-01-%02d/part-%04d.%s", d, i, f),
				format: f,
				seed:   int64(1000 + d*10 + i),
			})
		}
	}
	return objs
}

// put uploads objs with a _SUCCESS marker per partition and a hidden file,
// both of which the listing must skip, and returns the insert_ids of their
// events.
func put(t *testing.T, s *storagesrv.Server, bucket string, objs []object) map[string]bool {
	t.Helper()
	ctx := context.Background()
	want := map[string]bool{}
	dirs := map[string]bool{}
	for _, o := range objs {
		var buf bytes.Buffer
		opts := fixturegen.Options{N: eventsPerObject, Seed: o.seed, RowGroupRows: 50}
		if err := fixturegen.Write(&buf, o.format, opts); err != nil {
			t.Fatal(err)
		}
		if err := s.Upload(ctx, bucket, o.key, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		g := fixturegen.NewGenerator(opts)
		for {
			ev, ok := g.Next()
			if !ok {
				break
			}
			want[ev.InsertID] = true
		}
		dirs[o.key[:strings.LastIndexByte(o.key, '/')+1]] = true
	}
	for d := range dirs {
		if err := s.Upload(ctx, bucket, d+"_SUCCESS", nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Upload(ctx, bucket, d+".part-0000.jsonl.crc", []byte("not events\n")); err != nil {
			t.Fatal(err)
		}
	}
	return want
}

// subset returns the insert_ids of objs whose key matches keep.
func subset(objs []object, keep func(object) bool) map[string]bool {
	want := map[string]bool{}
	for _, o := range objs {
		if !keep(o) {
			continue
		}
		g := fixturegen.NewGenerator(fixturegen.Options{N: eventsPerObject, Seed: o.seed, RowGroupRows: 50})
		for {
			ev, ok := g.Next()
			if !ok {
				break
			}
			want[ev.InsertID] = true
		}
	}
	return want
}

// emu is the Amplitude emulator the child processes send to.
type emu struct {
	*emulator.Server
	URL string
}

func startEmulator(t *testing.T, latency time.Duration) *emu {
	t.Helper()
	s, err := emulator.New(emulator.Config{Faults: emulator.Faults{Latency: latency}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return &emu{s, ts.URL}
}

// checkExactlyOnce fails unless the emulator holds every wanted event once
// and nothing else.
func checkExactlyOnce(t *testing.T, e *emu, want map[string]bool) {
	t.Helper()
	got := map[string]int{}
	for _, r := range e.Events() {
		got[r.InsertID]++
	}
	missing, extra := 0, 0
	for id := range want {
		if got[id] == 0 {
			if missing++; missing <= 3 {
				t.Errorf("event %s never arrived", id)
			}
		}
	}
	for id, n := range got {
		if !want[id] {
			if extra++; extra <= 3 {
				t.Errorf("unexpected event %s", id)
			}
		}
		if n > 1 {
			t.Errorf("event %s recorded %d times", id, n)
		}
	}
	if missing+extra > 0 {
		t.Errorf("%d events missing, %d unexpected (of %d wanted, %d received)", missing, extra, len(want), len(got))
	}
}

// job is one backfill job: its checkpoint in the bucket, its local files.
type job struct {
	t          *testing.T
	s          *storagesrv.Server
	e          *emu
	dir        string
	checkpoint string
	env        []string
}

func newJob(t *testing.T, s *storagesrv.Server, e *emu, bucket, name string) *job {
	return &job{t: t, s: s, e: e, dir: t.TempDir(), checkpoint: s.URL(bucket, "state/"+name), env: s.Env(false)}
}

func (j *job) report() string { return filepath.Join(j.dir, "report.json") }

// cmd returns a backfill run of sources with the job's flags.
func (j *job) cmd(sources ...string) *exec.Cmd {
	args := []string{"run", "--endpoint", j.e.URL, "--checkpoint", j.checkpoint,
		"--report", j.report(), "--dead-letter", filepath.Join(j.dir, "dead-letter.jsonl"),
		"--progress", "none", "--linger", "20ms", "--route", "batch", "--batch-size", "50", "--lanes", "2",
		"--checkpoint-every", "1s", "--lock-ttl", "3s", "--lock-wait", "30s", "--log-level", "warn",
		"--csv-types", fixturegen.CSVColumnTypesFlag()}
	c := exec.Command(binPath, append(args, sources...)...)
	c.Env = append(cleanEnv(), j.env...)
	c.Env = append(c.Env, "AMPLITUDE_API_KEY="+apiKey)
	return c
}

// result is a finished run.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

func wait(c *exec.Cmd, out, errb *bytes.Buffer) result {
	err := c.Wait()
	code := 0
	if err != nil {
		code = -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
	}
	return result{code, out.String(), errb.String()}
}

// run runs sources to the end.
func (j *job) run(sources ...string) result {
	j.t.Helper()
	_, wait, _ := j.start(sources...)
	return wait()
}

// start starts a run and returns it, a function waiting for its end, and
// a channel closed when it ended.
func (j *job) start(sources ...string) (*exec.Cmd, func() result, <-chan struct{}) {
	j.t.Helper()
	c := j.cmd(sources...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		j.t.Fatal(err)
	}
	ended := make(chan struct{})
	var r result
	go func() { r = wait(c, &out, &errb); close(ended) }()
	return c, func() result { <-ended; return r }, ended
}

func running(ended <-chan struct{}) bool {
	select {
	case <-ended:
		return false
	default:
		return true
	}
}

// awaitAccepted waits until the emulator accepted n events in all.
func awaitAccepted(t *testing.T, e *emu, n int64, d time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if e.Stats().EventsAccepted >= n {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

type report struct {
	EventsRead     int64 `json:"events_read"`
	EventsAccepted int64 `json:"events_accepted"`
	EventsRejected int64 `json:"events_rejected"`
	ObjectsSkipped int   `json:"objects_skipped"`
	Status         string
	Run            struct {
		EventsRead int64 `json:"events_read"`
	} `json:"run"`
	Objects []struct {
		URL    string `json:"url"`
		Status string `json:"status"`
	} `json:"objects"`
}

func (j *job) readReport() report {
	j.t.Helper()
	b, err := os.ReadFile(j.report())
	if err != nil {
		j.t.Fatalf("read report: %v", err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		j.t.Fatalf("decode report: %v", err)
	}
	if r.EventsRead != r.EventsAccepted+r.EventsRejected {
		j.t.Errorf("report: read %d != accepted %d + rejected %d", r.EventsRead, r.EventsAccepted, r.EventsRejected)
	}
	return r
}

// cleanEnv is the test's environment without any cloud credential or
// endpoint setting of the developer's.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "AZURE_") || strings.HasPrefix(k, "GOOGLE_") ||
			k == "STORAGE_EMULATOR_HOST" || k == "AMPLITUDE_API_KEY" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// TestStorageServers runs the job of the package doc over each server, one
// server at a time: `go test ./...` runs timing-sensitive suites of other
// packages alongside on 2 cores.
func TestStorageServers(t *testing.T) {
	for _, kind := range storagesrv.Kinds {
		t.Run(kind, func(t *testing.T) {
			s := startServer(t, kind)
			testServer(t, s)
		})
	}
}

func testServer(t *testing.T, s *storagesrv.Server) {
	ctx := context.Background()
	const bucket = "events"
	if err := s.CreateBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	objs := layout(1, 8) // 32 objects
	want := put(t, s, bucket, objs)
	source := s.URL(bucket, "events/")

	t.Run("KillResumeRestart", func(t *testing.T) {
		e := startEmulator(t, 40*time.Millisecond)
		j := newJob(t, s, e, bucket, "job1")

		// 1. SIGKILL once a sixth of the events arrived.
		c, done, _ := j.start(source)
		total := int64(len(want))
		if !awaitAccepted(t, e, total/6, 2*time.Minute) {
			_ = c.Process.Kill()
			t.Fatalf("the first run never got going:\n%s", done())
		}
		if err := c.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if r := done(); r.code != -1 {
			t.Logf("first run ended before the kill: %s", r)
		}
		killedAt := e.Stats().EventsAccepted

		// 2. Resume; restart the server while it runs.
		_, done, ended := j.start(source)
		restarted := false
		if awaitAccepted(t, e, killedAt+(total-killedAt)/3, 2*time.Minute) && running(ended) {
			if err := s.Restart(time.Second); err != nil {
				t.Fatalf("restart %s: %v", s.Name, err)
			}
			restarted = true
		}
		r := done()
		t.Logf("resumed run (server restarted mid-run: %v): exit %d", restarted, r.code)
		if !restarted {
			t.Errorf("the resumed run ended before the server could be restarted")
		}
		if r.code != 0 {
			// A read that failed while the server was down leaves its
			// object unsettled and the run non-zero: say so, then the
			// same command must finish the job.
			t.Logf("resumed run failed while %s was down:\n%s", s.Name, r)
			if r = j.run(source); r.code != 0 {
				t.Fatalf("third run: %s", r)
			}
		}
		rep := j.readReport()
		if rep.EventsAccepted != total || rep.EventsRejected != 0 {
			t.Errorf("report accepted %d rejected %d, want %d accepted", rep.EventsAccepted, rep.EventsRejected, total)
		}
		if len(rep.Objects) != len(objs) {
			t.Errorf("report lists %d objects, want %d (markers and hidden files skipped)", len(rep.Objects), len(objs))
		}
		checkExactlyOnce(t, e, want)

		// 3. New objects land: an incremental run sends only them.
		more := layout(9, 9)
		newWant := put(t, s, bucket, more)
		if r := j.run(source); r.code != 0 {
			t.Fatalf("incremental run: %s", r)
		}
		rep = j.readReport()
		if rep.Run.EventsRead != int64(len(newWant)) || rep.ObjectsSkipped != len(objs) {
			t.Errorf("incremental run read %d events and skipped %d objects, want %d and %d",
				rep.Run.EventsRead, rep.ObjectsSkipped, len(newWant), len(objs))
		}
		for id := range newWant {
			want[id] = true
		}
		checkExactlyOnce(t, e, want)
		objs = append(objs, more...)
	})

	t.Run("GlobAndQuery", func(t *testing.T) {
		// The README's form: a glob over the dt= partitions, with the
		// server's query parameters (and region for S3).
		src := s.URL(bucket, "events/dt=2024-0*/*.parquet")
		if s.Kind == storagesrv.S3 {
			src += "&region=us-east-1"
		}
		e := startEmulator(t, 0)
		j := newJob(t, s, e, bucket, "glob")
		if r := j.run(src); r.code != 0 {
			t.Fatalf("glob run: %s", r)
		}
		checkExactlyOnce(t, e, subset(objs, func(o object) bool { return o.format == "parquet" }))
	})

	t.Run("WrongCredentials", func(t *testing.T) {
		if s.Kind == storagesrv.GCS {
			t.Skip("fake-gcs-server accepts any credential: nothing to test")
		}
		e := startEmulator(t, 0)
		j := newJob(t, s, e, bucket, "wrongkey")
		j.env = s.Env(true)
		j.checkpoint = filepath.Join(j.dir, "state") // the source fails, not the checkpoint
		r := j.run(source)
		checkClearError(t, r, bucket, "credential")
	})

	t.Run("MissingBucket", func(t *testing.T) {
		e := startEmulator(t, 0)
		j := newJob(t, s, e, bucket, "nobucket")
		j.checkpoint = filepath.Join(j.dir, "state")
		r := j.run(s.URL("no-such-bucket", "events/"))
		checkClearError(t, r, "no-such-bucket", "exist")
	})
}

// checkClearError fails unless the run failed with an error naming the
// bucket and saying what is wrong (hint, case-insensitive).
func checkClearError(t *testing.T, r result, bucket, hint string) {
	t.Helper()
	t.Logf("error shown:\n%s", r.stderr)
	if r.code == 0 {
		t.Fatalf("run succeeded: %s", r)
	}
	if !strings.Contains(r.stderr, bucket) || !strings.Contains(strings.ToLower(r.stderr), hint) {
		t.Errorf("the error should name bucket %q and say %q:\n%s", bucket, hint, r.stderr)
	}
	if strings.Contains(r.stderr, storagesrv.S3SecretKey) || strings.Contains(r.stderr, storagesrv.AzureKey) {
		t.Errorf("the error shows a secret:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "panic") {
		t.Errorf("panic:\n%s", r.stderr)
	}
}
