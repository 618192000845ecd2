package sharding_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/emulator"
	"github.com/backfillhq/backfill/internal/testutil"
)

// apiKey is a fake key; the emulator accepts any non-empty key.
const apiKey = "sharding-test-key-0123456789"

var (
	binDir    string
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sharding-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "sharding:", err)
		os.Exit(1)
	}
	binDir = dir
	// Build before any test starts its children's deadlines: under load the
	// build alone can take longer than a child's minute (TestManifestArgs,
	// the first to run one, used to fail with "start run: context deadline
	// exceeded" while the binary was still being built). -short runs need
	// no binary; a benchmark run builds on first use.
	flag.Parse()
	if !testing.Short() {
		buildOnce.Do(build)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func build() {
	binPath = filepath.Join(binDir, "backfill")
	buildErr = testutil.BuildBackfill(binPath)
}

// backfillBin returns the real binary's path, built once.
func backfillBin(t testing.TB) string {
	t.Helper()
	buildOnce.Do(build)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// childEnv is the environment of a backfill process: the test's, without
// any AWS, backfill or Amplitude setting, plus fake static AWS keys isolated
// from the developer's files and from the EC2 metadata endpoint.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "BACKFILL_") || strings.HasPrefix(k, "AMPLITUDE_") || k == "JOB_COMPLETION_INDEX" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, testutil.AWSEnv...)
	env = append(env, "AMPLITUDE_API_KEY="+apiKey)
	return append(env, extra...)
}

// fakeS3 is an in-process S3 behind httptest.
type fakeS3 struct{ *testutil.S3 }

func startS3(t testing.TB, buckets ...string) *fakeS3 {
	return &fakeS3{testutil.StartS3(t, buckets...)}
}

func (s *fakeS3) put(t testing.TB, bucket, key string, data []byte) { s.Put(t, bucket, key, data) }

// get returns an object's bytes, or nil when it does not exist.
func (s *fakeS3) get(bucket, key string) []byte {
	o, err := s.Backend.GetObject(bucket, key, nil)
	if err != nil {
		return nil
	}
	defer o.Contents.Close()
	data, err := io.ReadAll(o.Contents)
	if err != nil {
		return nil
	}
	return data
}

// state returns the checkpoint state saved under prefix/name, or nil.
func (s *fakeS3) state(bucket, prefix, name string) *checkpoint.State {
	data := s.get(bucket, prefix+"/"+name+"/"+checkpoint.StateFile)
	if data == nil {
		return nil
	}
	st, err := checkpoint.Unmarshal(data)
	if err != nil {
		return nil
	}
	return st
}

// URL returns an s3:// URL of path ("bucket" or "bucket/prefix/") on the
// fake, with the parameters gocloud's s3blob needs for it.
func (s *fakeS3) URL(path string) string { return "s3://" + path + "?" + s.Query() }

// emu is an emulator behind httptest, with every delivery counted.
type emu struct {
	*emulator.Server
	URL string
	del *deliveries
}

func startEmulator(t testing.TB, cfg emulator.Config) *emu {
	t.Helper()
	d := &deliveries{n: map[string]int{}}
	s, url := testutil.StartEmulator(t, cfg, d.wrap)
	return &emu{Server: s, URL: url, del: d}
}

// deliveries counts, per event (by its event_properties.src), how many
// times it was delivered in a request the emulator answered 200: a re-send
// of an already accepted event counts again (and is dropped by the
// emulator's insert_id dedupe).
type deliveries struct {
	mu     sync.Mutex
	n      map[string]int
	before func(srcs []string) // see setBefore
}

// setBefore makes f see the events of every request before the emulator
// does (to kill a worker with a request in flight).
func (d *deliveries) setBefore(f func(srcs []string)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.before = f
}

// decode returns the src of every event of a request body.
func decode(body []byte, gzipped bool) []string {
	if gzipped {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil
		}
		if body, err = io.ReadAll(zr); err != nil {
			return nil
		}
	}
	var req struct {
		Events []json.RawMessage `json:"events"`
	}
	if json.Unmarshal(body, &req) != nil {
		return nil
	}
	srcs := make([]string, len(req.Events))
	for i, ev := range req.Events {
		srcs[i] = srcOf(ev)
	}
	return srcs
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (d *deliveries) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/batch" && r.URL.Path != "/2/httpapi" {
			h.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		srcs := decode(body, r.Header.Get("Content-Encoding") == "gzip")
		d.mu.Lock()
		before := d.before
		d.mu.Unlock()
		if before != nil {
			before(srcs)
		}
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.status != http.StatusOK {
			return
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, s := range srcs {
			d.n[s]++
		}
	})
}

func (d *deliveries) counts() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]int, len(d.n))
	for k, v := range d.n {
		out[k] = v
	}
	return out
}

// srcOf returns event_properties.src of an event or a source record.
func srcOf(raw []byte) string {
	var v struct {
		Props struct {
			Src string `json:"src"`
		} `json:"event_properties"`
	}
	json.Unmarshal(raw, &v)
	return v.Props.Src
}

// proc is one running backfill process.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *testutil.SyncBuffer
	done           chan struct{}
	code           int
	started        time.Time
	elapsed        time.Duration
}

// start starts the binary with args and env; ctx bounds its life.
func start(ctx context.Context, t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.CommandContext(ctx, backfillBin(t), args...)
	cmd.Env = env
	p := &proc{name: name, cmd: cmd, stdout: new(testutil.SyncBuffer), stderr: new(testutil.SyncBuffer), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		err := cmd.Wait()
		p.elapsed = time.Since(p.started)
		p.code = cmd.ProcessState.ExitCode()
		if err != nil && p.code == 0 {
			p.code = -1
		}
		close(p.done)
	}()
	return p
}

// wait waits for the process and returns its exit code (-1 when killed).
func (p *proc) wait() int {
	<-p.done
	return p.code
}

// output is the process's stdout and stderr, for failure messages.
func (p *proc) output() string {
	return fmt.Sprintf("--- %s stdout ---\n%s--- %s stderr ---\n%s", p.name, p.stdout, p.name, lastLines(p.stderr.String(), 40))
}

func lastLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("(%d lines cut)\n", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "")
}

// run runs the binary to completion and returns its exit code and stdout.
func run(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := start(ctx, t, args[0], env, args...)
	code := p.wait()
	return code, p.stdout.String(), p.stderr.String()
}
