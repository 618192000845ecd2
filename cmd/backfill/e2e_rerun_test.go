package main

import (
	"testing"

	"github.com/backfillhq/backfill/emulator"
)

// TestE2EIncremental re-runs a finished job (nothing is sent again, every
// object is skipped), then adds a file to the source directory and re-runs,
// as a nightly job does: only the new file's events are sent.
func TestE2EIncremental(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	day1 := []srcFile{
		genFile("dt=2024-01-01/part-0.jsonl", "d1a", 150, genOptions{invalid: true, noInsert: 3}),
		genFile("dt=2024-01-01/part-1.jsonl.gz", "d1b", 100, genOptions{}),
	}
	writeFiles(t, root, day1...)
	e := startEmulator(t, emulator.Config{})
	w := newWorkDir(t)
	args := append(w.runArgs(e, "--api-key", e2eKey), root)

	res := runMain(t, args...)
	if res.code != ExitRejected {
		t.Fatalf("first run: exit code %d\n%s", res.code, res)
	}
	good1, bad1 := expect(root, nil, day1...)
	checkDelivered(t, e, good1)
	checkDeadLetter(t, w.deadLetter, bad1)
	before := e.Stats()

	// The same command again: a finished job sends nothing.
	res = runMain(t, args...)
	if res.code != ExitRejected {
		t.Fatalf("second run: exit code %d, want %d (the job's totals still hold rejections)\n%s", res.code, ExitRejected, res)
	}
	st := e.Stats()
	if n := st.RequestsBatch + st.RequestsHTTP - before.RequestsBatch - before.RequestsHTTP; n != 0 {
		t.Errorf("re-running a finished job made %d requests", n)
	}
	rep := readReport(t, w.report)
	rep.checkInvariant(t)
	if rep.ObjectsSkipped != 2 || rep.Run.EventsRead != 0 || rep.Runs != 2 {
		t.Errorf("second run: skipped %d objects, read %d events, runs %d; want 2, 0, 2", rep.ObjectsSkipped, rep.Run.EventsRead, rep.Runs)
	}
	checkDeadLetter(t, w.deadLetter, bad1) // not written twice

	// A new day arrives: only its events are sent.
	day2 := genFile("dt=2024-01-02/part-0.jsonl", "d2", 90, genOptions{noInsert: 4})
	writeFiles(t, root, day2)
	res = runMain(t, args...)
	if res.code != ExitRejected {
		t.Fatalf("third run: exit code %d\n%s", res.code, res)
	}
	all, _ := expect(root, nil, append(day1, day2)...)
	checkDelivered(t, e, all)
	good2, _ := expect(root, nil, day2)
	st2 := e.Stats()
	if sent := st2.EventsAccepted + st2.EventsDuplicate - st.EventsAccepted - st.EventsDuplicate; sent != int64(len(good2)) || st2.EventsDuplicate != 0 {
		t.Errorf("third run sent %d events (%d duplicates in all), want only the new file's %d", sent, st2.EventsDuplicate, len(good2))
	}
	rep = readReport(t, w.report)
	rep.checkInvariant(t)
	if rep.ObjectsTotal != 3 || rep.ObjectsSkipped != 2 || rep.ObjectsDone != 1 || rep.Run.EventsRead != int64(len(good2)) {
		t.Errorf("third run: objects %d, skipped %d, done %d, read %d this run; want 3, 2, 1, %d", rep.ObjectsTotal, rep.ObjectsSkipped, rep.ObjectsDone, rep.Run.EventsRead, len(good2))
	}
	if rep.EventsAccepted != int64(len(all)) || rep.EventsRejected != int64(len(bad1)) {
		t.Errorf("job totals accepted %d rejected %d, want %d %d", rep.EventsAccepted, rep.EventsRejected, len(all), len(bad1))
	}
	checkDeadLetter(t, w.deadLetter, bad1)
}
