package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill/emulator"
)

// These run in real time, so they are scaled down from the 60,000
// events (a minute at 1,000 events/s): the same ceilings, fewer events. The
// full-size run, and the 10% bound on the adapted rate, are checked in
// simulated time by uploader's TestProjectLimitAdaptation, with the real
// emulator and client. BACKFILL_LONG_E2E=1 runs the full 60,000 here too.

// TestE2EProjectLimitAdapts: a project limited to 1,000 events/s, no
// ceiling configured. The run learns the limit from the project-level 429s,
// delivers every event exactly once and gives up no request, although
// --max-attempts is 2 and it meets far more 429s than that.
func TestE2EProjectLimitAdapts(t *testing.T) {
	if testing.Short() {
		t.Skip("real time: about 10 s")
	}
	t.Parallel()
	n := 8000
	if os.Getenv("BACKFILL_LONG_E2E") != "" {
		n = 60000
	}
	root := t.TempDir()
	files := []srcFile{genFile("events.jsonl", "proj", n, genOptions{devices: 400})}
	writeFiles(t, root, files...)
	good, _ := expect(root, nil, files...)
	e := startEmulator(t, emulator.Config{ProjectEPS: 1000})
	w := newWorkDir(t)
	res := runMain(t, append(w.runArgs(e, "--api-key", e2eKey, "--route", "batch", "--max-attempts", "2"), root)...)
	if res.code != ExitOK {
		t.Fatalf("exit code %d\n%s", res.code, res)
	}
	checkDelivered(t, e, good)
	rep := readReport(t, w.report)
	rep.checkInvariant(t)
	st := e.Stats()
	for _, k := range []string{"achieved_eps", "achieved_rps", "held_back_seconds", "ceilings"} {
		if _, ok := rep.raw[k]; !ok {
			t.Errorf("report has no %q", k)
		}
	}
	if st.ProjectThrottled <= 2 || rep.Run.ProjectPushbacks != st.ProjectThrottled || rep.Responses429 != st.ProjectThrottled {
		t.Errorf("project 429s: emulator %d, report pushbacks %d, report 429s %d; want equal and more than --max-attempts",
			st.ProjectThrottled, rep.Run.ProjectPushbacks, rep.Responses429)
	}
	c := rep.Ceilings["batch"]
	if c.Cuts == 0 || c.EPS <= 0 || c.EPS > 2000 || rep.HeldBackSeconds <= 0 {
		t.Errorf("ceiling %+v, held back %.1fs: the run did not adapt", c, rep.HeldBackSeconds)
	}
	if !strings.Contains(res.stdout, "project  achieved") {
		t.Errorf("summary has no project line:\n%s", res.stdout)
	}
	// A loose bound only: the rate of a real-time run on a shared machine
	// says more about the machine than about the controller.
	if rep.AchievedEPS > 1000 || rep.AchievedEPS < 250 {
		t.Errorf("achieved %.0f events/s against a 1,000 events/s project", rep.AchievedEPS)
	}
	t.Logf("%d events in %.1fs: achieved %.0f events/s, %.1f requests/s; %d project 429s; ceiling %.0f events/s after %d cuts; held back %.1fs; emulator saw at most %d events in a second",
		n, rep.DurationSeconds, rep.AchievedEPS, rep.AchievedRPS, st.ProjectThrottled, c.EPS, c.Cuts, rep.HeldBackSeconds, st.MaxProjectEPS)
}

// TestE2EMaxEPSHoldsTheCeiling: with --max-eps 500 the emulator never sees
// more than 500 events in any one-second window, beyond one request's
// worth (50 events: requests carry a tenth of the ceiling) for the jitter
// of the trip to it.
func TestE2EMaxEPSHoldsTheCeiling(t *testing.T) {
	if testing.Short() {
		t.Skip("real time: about 6 s")
	}
	t.Parallel()
	root := t.TempDir()
	files := []srcFile{genFile("events.jsonl", "max", 3000, genOptions{devices: 100})}
	writeFiles(t, root, files...)
	good, _ := expect(root, nil, files...)
	e := startEmulator(t, emulator.Config{})
	w := newWorkDir(t)
	res := runMain(t, append(w.runArgs(e, "--api-key", e2eKey, "--route", "batch", "--max-eps", "500"), root)...)
	if res.code != ExitOK {
		t.Fatalf("exit code %d\n%s", res.code, res)
	}
	checkDelivered(t, e, good)
	rep := readReport(t, w.report)
	st := e.Stats()
	if st.MaxProjectEPS > 550 {
		t.Errorf("the emulator saw %d events in a 1 s window, want at most 500 (+50)", st.MaxProjectEPS)
	}
	// 3,000 events at 500/s: the last 500 go 5 s after the first.
	if res.elapsed < 5*time.Second {
		t.Errorf("finished in %s, faster than --max-eps 500 allows", res.elapsed)
	}
	if c := rep.Ceilings["batch"]; c.MaxEPS != 500 || c.EPS != 500 || c.Cuts != 0 {
		t.Errorf("ceiling %+v", c)
	}
	if st.Responses[429] != 0 {
		t.Errorf("%d 429s", st.Responses[429])
	}
	t.Logf("3,000 events at --max-eps 500 in %s; the emulator saw at most %d events and %d requests in a second; held back %.1fs",
		res.elapsed.Round(time.Millisecond), st.MaxProjectEPS, st.MaxProjectRPS, rep.HeldBackSeconds)
}

// TestE2EPlanAddsTheCeiling: backfill plan's lower bound includes the
// project ceiling, and a shard takes its share of it.
func TestE2EPlanAddsTheCeiling(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, genFile("events.jsonl", "plan", 3000, genOptions{devices: 100}))
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-eps", "500"}, "lower bound on the finishing time: 5s ("},
		{[]string{"--max-eps", "500", "--max-rps", "2"}, "lower bound on the finishing time: 29s ("}, // 60 requests of 50
		{[]string{"--max-eps", "1000", "--shard", "0/2"}, "project ceiling of 500 events/s"},
	} {
		res := runMain(t, append(append([]string{"plan"}, tt.args...), root)...)
		if res.code != ExitOK || !strings.Contains(res.stdout, tt.want) {
			t.Errorf("plan %v: want %q in\n%s", tt.args, tt.want, res)
		}
	}
}
