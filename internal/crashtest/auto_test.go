//go:build unix

package crashtest_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/emulator"
)

// Settings of the --route auto crash loop.
const (
	// autoEPS is --eps and --http-eps, and the emulator's per-id limit on
	// both routes: 150 events per id per window, so each of the batch
	// partitions' 50 devices (about 240 events) needs two windows.
	autoEPS = 5
	// autoBatchEvents is the number of valid events of each of the three
	// batch partitions.
	autoBatchEvents = 4000
	// autoHotTail is the tail's events of its hot device (and user): just
	// under one /2/httpapi window, so a resumed run that re-sends a killed
	// tail request without counting it gets a 429.
	autoHotTail = 140
)

// genAutoInput writes a job with batch and tail partitions for --route
// auto: three JSON-lines partitions from fixturegen (with invalid records),
// then two small ones, each under 1/10 of a batch partition, that hold one
// device and user with just under one /2/httpapi window of events in all:
// its first tail request is the one the tail kills hit, and a resumed run
// that re-sends it without counting what the killed run sent meets a 429.
// The tail's ids are its own: the emulator counts an id's events on both
// endpoints in one window, while the pacer keeps a budget per route (see
// the note of issue 16).
func genAutoInput(dir string) (*inputSet, error) {
	in := &inputSet{dir: dir, valid: map[string]bool{}, invalid: map[recKey]string{}, ids: map[string][]string{}}
	for i := range 3 {
		name := fmt.Sprintf("0%d-events.jsonl", i+1)
		if err := writeJSONL(in, filepath.Join(dir, name), int64(300+i), autoBatchEvents); err != nil {
			return nil, err
		}
	}
	for i, name := range []string{"04-tail.jsonl", "05-tail.jsonl"} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		w := bufio.NewWriter(f)
		var rec int64
		line := func(dev, user string) {
			id := fmt.Sprintf("tail-%d-%d", i, rec)
			fmt.Fprintf(w, `{"event_type":"tail","device_id":%q,"user_id":%q,"time":%d,"insert_id":%q}`+"\n", dev, user, 1735689600000+rec, id)
			in.addValid(name, rec, id)
			rec++
		}
		for range autoHotTail / 2 {
			line("tail-hot-device", "tail-hot-user")
		}
		if err := w.Flush(); err != nil {
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// startEmulatorRoutes serves an emulator whose per-id limit is eps on
// both /batch and /2/httpapi.
func startEmulatorRoutes(t *testing.T, eps int) *emu {
	t.Helper()
	srv, err := emulator.New(emulator.Config{
		Silenced: []string{silencedDevice},
		Faults:   emulator.Faults{Latency: latency},
		BatchEPS: eps,
		HTTPEPS:  eps,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &emu{Server: srv}
}

// routes returns the endpoint that accepted each insert_id.
func routes(srv *emu) map[string]backfill.Route {
	m := map[string]backfill.Route{}
	for _, ev := range srv.Events() {
		m[ev.InsertID] = ev.Route
	}
	return m
}

// TestCrashAuto SIGKILLs runs of a --route auto job whose trailing
// partitions go to /2/httpapi: during start-up and the first seconds
// (the /batch partitions), right after tail requests were answered, and at
// the final save. Every event must arrive exactly once, on the endpoint an
// unkilled run of the same job sends it to (the route plan holds across
// resumes), the re-sends stay within kills × window, and no request meets
// a 429 with the emulator's per-id limit at --eps on both routes.
func TestCrashAuto(t *testing.T) {
	if testing.Short() {
		t.Skip("the --route auto crash loop is skipped under -short")
	}
	t.Parallel() // mostly waiting for the paced devices' windows
	rng := rand.New(rand.NewPCG(seed(t), 0))
	in, err := genAutoInput(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	flags := func(ck string) []string {
		return []string{"--route", "auto", "--checkpoint", ck,
			"--checkpoint-every", crashSaveEvery.String(),
			"--lanes", strconv.Itoa(lanes), "--batch-size", strconv.Itoa(batchSize),
			"--eps", strconv.Itoa(autoEPS), "--http-eps", strconv.Itoa(autoEPS)}
	}

	// The unkilled run, at the same time: where each event goes.
	ref := startEmulatorRoutes(t, autoEPS)
	refTS := httptest.NewServer(ref)
	t.Cleanup(refTS.Close)
	refCk := filepath.Join(t.TempDir(), "ck")
	refJob := newJobFor(t, in, refTS.URL, nil, flags(refCk)...)
	refDone := make(chan int, 1)
	go func() {
		p := refJob.start()
		select {
		case <-p.done:
		case <-time.After(3 * time.Minute):
			p.cmd.Process.Kill()
			<-p.done
		}
		refDone <- p.cmd.ProcessState.ExitCode()
	}()

	srv := startEmulatorRoutes(t, autoEPS)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	ck := filepath.Join(t.TempDir(), "ck")
	j := newJobFor(t, in, ts.URL, nil, flags(ck)...)
	// Kills in the /batch partitions (as killPlan spreads them), two at
	// tail requests (just after one was ingested, then while one is on its
	// way), then the final save.
	plan := killPlan(rng, 9)
	plan = append(plan[:len(plan)-1], ingestedHTTP, afterHTTP, finalSave)
	out := crashLoop(t, j, srv, plan, loader(ck), ck, nil)
	if len(out.kills) < len(plan)-1 {
		t.Errorf("only %d kills hit a running process, want at least %d", len(out.kills), len(plan)-1)
	}
	if out.code != 3 {
		t.Errorf("final exit code %d, want 3 (completed with dead-lettered records)", out.code)
	}
	checkDelivery(t, in, srv, filepath.Join(ck, "dead-letter.jsonl"), filepath.Join(ck, "report.json"))
	rep := readReport(t, filepath.Join(ck, "report.json"))
	checkResent(t, srv, out, rep, true)
	checkPaced(t, srv, rep, autoEPS)

	// One plan, recorded by the first run and followed by every resume.
	plans, _ := filepath.Glob(filepath.Join(ck, "plan-*.json"))
	if len(plans) != 1 || filepath.Base(plans[0]) != "plan-000001.json" {
		t.Errorf("route plans in the checkpoint: %v, want plan-000001.json only", plans)
		for _, p := range plans {
			b, _ := os.ReadFile(p)
			t.Logf("%s: %.600s", p, b)
		}
		t.Logf("final run stderr: %s", tail(out.stderr))
	}

	if code := <-refDone; !completed(code) {
		t.Fatalf("the unkilled run exited %d", code)
	}
	if n := ref.Stats().Responses[429]; n > 0 {
		t.Errorf("the unkilled run met %d 429s", n)
	}
	want, got := routes(ref), routes(srv)
	var perRoute [2]int
	moved := 0
	for id, r := range want {
		perRoute[r]++
		if g, ok := got[id]; ok && g != r {
			moved++
			if moved <= 5 {
				t.Errorf("%s went to %s after the kills, to %s without", id, g, r)
			}
		}
	}
	if moved > 0 {
		t.Errorf("%d events went to another endpoint than in the unkilled run", moved)
	}
	if perRoute[backfill.RouteBatch] == 0 || perRoute[backfill.RouteHTTP] != autoHotTail {
		t.Errorf("the unkilled run sent %d events to /batch and %d to /2/httpapi, want the %d tail events on /2/httpapi",
			perRoute[backfill.RouteBatch], perRoute[backfill.RouteHTTP], autoHotTail)
	}
	t.Logf("routes: %d events on /batch, %d on /2/httpapi, as in the unkilled run", perRoute[backfill.RouteBatch], perRoute[backfill.RouteHTTP])
}
