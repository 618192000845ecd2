package job_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/emulator"
	"github.com/backfillhq/backfill/internal/testutil"
	"github.com/backfillhq/backfill/job"
)

// TestPlanGenerations runs a 2-shard job shard by shard: a shard follows
// the recorded plan while another shard has not completed it (an object
// landing meanwhile waits), and once both completed it the next run records
// a new generation that takes the new object; every event is accepted
// exactly once, by the shard of its device.
func TestPlanGenerations(t *testing.T) {
	root := t.TempDir()
	write := func(name string, n int) {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `{"event_type":"view","device_id":"device-%04d","time":%d,"insert_id":"%s-%d"}`+"\n", i%50, 1717200000000+int64(i), name, i)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.jsonl", 300)
	write("b.jsonl", 300)
	em, url := testutil.StartEmulator(t, emulator.Config{}, nil)
	ck := t.TempDir()
	runShard := func(shard int) *job.Report {
		t.Helper()
		cfg := job.Config{
			Sources: []string{root}, APIKey: "test-key-123", Endpoint: url, Checkpoint: ck,
			Shard: fmt.Sprintf("%d/2", shard), DeadLetter: filepath.Join(t.TempDir(), "dl.jsonl"),
			CheckpointEvery: 50e6,
		}
		rep, err := job.Run(context.Background(), context.Background(), cfg)
		if err != nil {
			t.Fatalf("shard %d: %v", shard, err)
		}
		return rep
	}
	plans := func() []string {
		m, _ := filepath.Glob(filepath.Join(ck, "plan-*.json"))
		for i := range m {
			m[i] = filepath.Base(m[i])
		}
		return m
	}
	for _, step := range []struct {
		shard    int
		landing  string // written before the run
		wantPlan int
		wantRead int64 // objects' records this shard reads (all shards read everything)
	}{
		{shard: 0, wantPlan: 1, wantRead: 600},
		{shard: 0, landing: "c.jsonl", wantPlan: 1, wantRead: 600}, // shard 1 has not done plan 1
		{shard: 1, wantPlan: 1, wantRead: 600},
		{shard: 0, wantPlan: 2, wantRead: 900},
		{shard: 1, wantPlan: 2, wantRead: 900},
	} {
		if step.landing != "" {
			write(step.landing, 300)
		}
		rep := runShard(step.shard)
		if rep.Plan != step.wantPlan {
			t.Fatalf("shard %d followed plan %d, want %d (plans %v)", step.shard, rep.Plan, step.wantPlan, plans())
		}
		if rep.Shard == nil {
			t.Fatalf("shard %d: no shard section in the report", step.shard)
		}
		if got := rep.EventsAccepted + rep.Shard.EventsOther; rep.Runs == 1 && got != step.wantRead {
			t.Errorf("shard %d: owned %d + other %d, want %d", step.shard, rep.EventsAccepted, rep.Shard.EventsOther, step.wantRead)
		}
	}
	if got := plans(); fmt.Sprint(got) != "[plan-000001.json plan-000002.json]" {
		t.Errorf("plans %v", got)
	}
	seen := map[string]int{}
	for _, r := range em.Events() {
		var ev struct {
			InsertID string `json:"insert_id"`
		}
		json.Unmarshal(r.Event, &ev)
		seen[ev.InsertID]++
	}
	if len(seen) != 900 {
		t.Errorf("%d distinct events accepted, want 900", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s accepted %d times", id, n)
		}
	}
	if st := em.Stats(); st.EventsDuplicate != 0 {
		t.Errorf("%d duplicates: a shard re-sent events", st.EventsDuplicate)
	}
}
