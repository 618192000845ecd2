package main

import (
	"testing"

	"github.com/backfillhq/backfill/emulator"
)

// TestE2EPacingAvoids429 runs one hot device (1,000 events) among cold ones
// against an emulator that throttles /batch at 20 events/s per id, with
// --eps 20: the proactive budget alone keeps every id within the limit, so
// not a single 429 happens, and the hot device really waits for its second
// window (about 31 s of wall time).
func TestE2EPacingAvoids429(t *testing.T) {
	if testing.Short() {
		t.Skip("paces a hot device over two 30 s windows (about 31 s)")
	}
	t.Parallel()
	root := t.TempDir()
	files := []srcFile{
		genFile("a-cold.jsonl", "cold", 600, genOptions{devices: 60}),
		genFile("b-hot.jsonl", "hot", 1000, genOptions{hotDevice: "device-hot-0001"}),
		genFile("c-cold.jsonl", "cold2", 300, genOptions{devices: 30}),
	}
	writeFiles(t, root, files...)
	good, _ := expect(root, nil, files...)
	e := startEmulator(t, emulator.Config{BatchEPS: 20})
	w := newWorkDir(t)
	res := runMain(t, append(w.runArgs(e, "--api-key", e2eKey, "--eps", "20", "--route", "batch"), root)...)
	if res.code != ExitOK {
		t.Fatalf("exit code %d\n%s", res.code, res)
	}
	checkDelivered(t, e, good)
	rep := readReport(t, w.report)
	rep.checkInvariant(t)
	st := e.Stats()
	if rep.Responses429 != 0 || st.Responses[429] != 0 {
		t.Errorf("429s: report %d, emulator %d; want none", rep.Responses429, st.Responses[429])
	}
	if m := e.MaxWindowEPS(); m > 20 {
		t.Errorf("max window EPS %.2f > 20", m)
	}
	// 1,000 events at 600 per window need a second window.
	if res.elapsed < 29e9 {
		t.Errorf("finished in %s: the hot device was not paced", res.elapsed)
	}
	if p := e.Peaks(); len(p) == 0 || p[0].EPS != 20 {
		t.Errorf("peaks %v, want the hot device at exactly 20 events/s", p[:min(len(p), 3)])
	}
	t.Logf("paced run took %s", res.elapsed)
}
