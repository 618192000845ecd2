//go:build unix

package crashtest_test

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitAccepted waits until the emulator accepted at least n events in all.
func waitAccepted(t *testing.T, srv *emu, p *proc, n int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for srv.Stats().EventsAccepted < n {
		if p.exited() {
			t.Fatalf("the run ended before the emulator accepted %d events; stderr:\n%s", n, tail(p.stderr.String()))
		}
		if time.Now().After(deadline) {
			t.Fatalf("the emulator did not accept %d events within 60s", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// interrupt sends SIGINT once and expects the graceful stop: exit code 130
// and a checkpoint that holds every event the emulator accepted.
func interrupt(t *testing.T, srv *emu, p *proc, load loadFunc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 30*time.Second); code != 130 {
		t.Fatalf("exit code %d after SIGINT, want 130; stderr:\n%s", code, tail(p.stderr.String()))
	}
	if !strings.Contains(p.stderr.String(), "interrupted") {
		t.Errorf("stderr after SIGINT does not say it was interrupted:\n%s", tail(p.stderr.String()))
	}
	st, err := load()
	if err != nil {
		t.Fatalf("load the checkpoint after SIGINT: %v", err)
	}
	if lost := lostAcks(input, st, acceptedIDs(srv)); len(lost) > 0 {
		t.Errorf("after SIGINT the checkpoint lacks %d events the emulator accepted", len(lost))
	}
}

// TestInterruptResume stops runs with one SIGINT twice and resumes: the
// graceful stop finishes the requests in flight and saves them, so the
// resumes re-send nothing at all.
func TestInterruptResume(t *testing.T) {
	srv, url := startEmulator(t, latency)
	ck := filepath.Join(t.TempDir(), "ck")
	j := newJob(t, url, nil, append(crashFlags(), "--checkpoint", ck)...)
	load := loader(ck)

	for _, at := range []int64{3000, 15000} {
		p := j.start()
		waitAccepted(t, srv, p, at)
		interrupt(t, srv, p, load)
	}
	if code, p := j.run(90 * time.Second); code != 3 {
		t.Fatalf("resumed run exited %d, want 3; stderr:\n%s", code, tail(p.stderr.String()))
	}
	if d := srv.Stats().EventsDuplicate; d != 0 {
		t.Errorf("resuming after Ctrl-C re-sent %d events, want 0", d)
	}
	checkDelivery(t, input, srv, filepath.Join(ck, "dead-letter.jsonl"), filepath.Join(ck, "report.json"))
	if r := readReport(t, filepath.Join(ck, "report.json")); r.Runs != 3 {
		t.Errorf("report: runs %d, want 3", r.Runs)
	}
}

// TestChangedConfig refuses to resume a checkpoint with options that change
// the events sent, names what changed, and resumes with --force.
func TestChangedConfig(t *testing.T) {
	srv, url := startEmulator(t, latency)
	ck := filepath.Join(t.TempDir(), "ck")
	j := newJob(t, url, nil, append(crashFlags(), "--checkpoint", ck)...)
	p := j.start()
	waitAccepted(t, srv, p, 3000)
	interrupt(t, srv, p, loader(ck))

	for _, tt := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"MinIDLength", []string{"--min-id-length", "3"}, "min_id_length changed: 0 → 3"},
		{"Preset", []string{"--preset", "segment"}, "preset changed: amplitude → segment"},
		{"CSVTypes", []string{"--csv-types", "time:string"}, "csv_types changed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, p := j.with(tt.flags...).run(30 * time.Second)
			if code != 2 {
				t.Fatalf("exit code %d, want 2 (usage); stderr:\n%s", code, tail(p.stderr.String()))
			}
			msg := p.stderr.String()
			for _, want := range []string{"checkpoint belongs to a different job", tt.want, "--force"} {
				if !strings.Contains(msg, want) {
					t.Errorf("stderr lacks %q:\n%s", want, tail(msg))
				}
			}
		})
	}
	if t.Failed() {
		return
	}
	before := srv.Stats()
	code, p := j.with("--min-id-length", "3", "--force").run(90 * time.Second)
	if code != 3 {
		t.Fatalf("forced resume exited %d, want 3; stderr:\n%s", code, tail(p.stderr.String()))
	}
	if !strings.Contains(p.stderr.String(), "another configuration") {
		t.Errorf("the forced resume does not warn about the changed configuration:\n%s", tail(p.stderr.String()))
	}
	if got := srv.Stats().EventsDuplicate - before.EventsDuplicate; got != 0 {
		t.Errorf("the forced resume re-sent %d events, want 0 (it resumes, it does not restart)", got)
	}
	checkDelivery(t, input, srv, filepath.Join(ck, "dead-letter.jsonl"), filepath.Join(ck, "report.json"))
}
