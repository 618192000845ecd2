package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/emulator"
)

// TestE2ETailRouting: large historical files plus small recent hive
// partitions (dt=...). With --route auto only the recent partitions go
// through /2/httpapi, after every /batch event; --route batch and --route
// http force one endpoint; a recent partition with an id too hot for HTTP
// V2's pace keeps everything on /batch.
func TestE2ETailRouting(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	files := []srcFile{
		genFile("2024-01.jsonl", "h1", 300, genOptions{devices: 30}),
		genFile("2024-02.jsonl.gz", "h2", 300, genOptions{devices: 30, noInsert: 7}),
		genFile("2024-03.json", "h3", 300, genOptions{devices: 30}),
		genFile("recent/dt=2024-05-01/part-0.jsonl", "r1a", 30, genOptions{startTime: 1714521600000}),
		genFile("recent/dt=2024-05-01/part-1.jsonl", "r1b", 20, genOptions{startTime: 1714521600000, noInsert: 2}),
		genFile("recent/dt=2024-05-02/part-0.jsonl", "r2", 40, genOptions{startTime: 1714608000000, hotDevice: "device-recent-hot"}),
	}
	writeFiles(t, root, files...)
	good, _ := expect(root, nil, files...)
	isRecent := func(w wantEvent) bool { return strings.Contains(w.object, "/recent/dt=") }
	tests := []struct {
		name  string
		flags []string
		http  func(w wantEvent) bool // whether w must arrive on /2/httpapi
	}{
		{"Auto", []string{"--tail-events", "100"}, isRecent},
		{"AutoTailTooSmall", []string{"--tail-events", "60"}, func(w wantEvent) bool { return strings.Contains(w.object, "dt=2024-05-02") }},
		{"AutoHotRecentID", []string{"--tail-events", "100", "--http-eps", "1"}, func(wantEvent) bool { return false }},
		{"ForceBatch", []string{"--route", "batch"}, func(wantEvent) bool { return false }},
		{"ForceHTTP", []string{"--route", "http"}, func(wantEvent) bool { return true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := startEmulator(t, emulator.Config{})
			w := newWorkDir(t)
			res := runMain(t, append(append(w.runArgs(e, "--api-key", e2eKey), tt.flags...), root)...)
			if res.code != ExitOK {
				t.Fatalf("exit code %d\n%s", res.code, res)
			}
			got := checkDelivered(t, e, good)
			nHTTP := 0
			for _, w := range good {
				want := backfill.RouteBatch
				if tt.http(w) {
					want = backfill.RouteHTTP
					nHTTP++
				}
				if r, ok := got[w.insertID]; ok && r.Route != want {
					t.Errorf("event %s of %s arrived on %s, want %s", w.insertID, filepath.Base(filepath.Dir(w.object))+"/"+filepath.Base(w.object), r.Route, want)
				}
			}
			// The tail starts once all /batch traffic has settled.
			lastBatch, firstHTTP := -1, -1
			for i, r := range e.Events() {
				if r.Route == backfill.RouteBatch {
					lastBatch = i
				} else if firstHTTP < 0 {
					firstHTTP = i
				}
			}
			if lastBatch >= 0 && firstHTTP >= 0 && firstHTTP < lastBatch {
				t.Errorf("an /2/httpapi event (#%d) arrived before the last /batch one (#%d)", firstHTTP, lastBatch)
			}
			rep := readReport(t, w.report)
			rep.checkInvariant(t)
			if got := rep.Routes["httpapi"].Accepted; got != int64(nHTTP) {
				t.Errorf("report: %d events accepted on httpapi, want %d (routes %v)", got, nHTTP, rep.Routes)
			}
			st := e.Stats()
			if (st.RequestsHTTP > 0) != (nHTTP > 0) || (st.RequestsBatch > 0) != (nHTTP < len(good)) {
				t.Errorf("requests: %d batch, %d httpapi", st.RequestsBatch, st.RequestsHTTP)
			}
		})
	}
}
