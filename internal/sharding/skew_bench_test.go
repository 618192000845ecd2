package sharding_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/backfillhq/backfill/emulator"
	"github.com/backfillhq/backfill/job"
)

// BenchmarkShardedSkew measures the makespan of a 3-shard run over a skewed
// dataset (one device with its own user holds 9,000 of 18,000 events,
// spread over every object) against the single-process lower bound that
// Amplitude's per-id limit sets ((⌈9000/(eps·30)⌉−1)·30 s = 60 s at --eps
// 100), and an unsharded run of the same data in the same benchmark. With
// the split by device the hot device is sent by one shard at the full
// --eps, so the sharded makespan stays near the bound (the object split of
// earlier versions paced it at --eps/3: about 3×).
//
//	go test -run '^$' -bench ShardedSkew -benchtime 1x ./internal/sharding/
func BenchmarkShardedSkew(b *testing.B) {
	const (
		objects    = 9
		hotPer     = 1000
		coldPer    = 1000
		coldDevs   = 2000
		benchEPS   = 100
		benchShard = 3
	)
	backfillBin(b)
	s3 := startS3(b, "events", "state")
	ms := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for o := range objects {
		var buf bytes.Buffer
		for i := range hotPer + coldPer {
			ms += 10
			dev, user := "device-hot-skew", "user-hot-skew"
			if i%2 == 1 || i >= 2*hotPer {
				d := (o*coldPer + i) % coldDevs
				dev, user = fmt.Sprintf("device-%05d", d), fmt.Sprintf("user-%05d", d)
			}
			ev, _ := json.Marshal(map[string]any{"event_type": "view", "device_id": dev, "user_id": user, "time": ms,
				"insert_id": fmt.Sprintf("skew-%d-%d", o, i)})
			buf.Write(append(ev, '\n'))
		}
		s3.put(b, "events", fmt.Sprintf("export/part-%03d.jsonl", o), buf.Bytes())
	}
	lower := job.LowerBound(objects*hotPer, benchEPS)
	for n := 0; b.Loop(); n++ {
		em := startEmulator(b, emulator.Config{BatchEPS: benchEPS})
		ref := startEmulator(b, emulator.Config{BatchEPS: benchEPS})
		dir := b.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		args := func(e *emu, ck string, extra ...string) []string {
			return append(append([]string{"run", "--checkpoint", s3.URL(ck), "--endpoint", e.URL, "--eps", strconv.Itoa(benchEPS),
				"--route", "batch", "--progress", "none", "--dead-letter", filepath.Join(dir, ck[len(ck)-6:]+strconv.Itoa(len(extra))+".jsonl")}, extra...),
				s3.URL("events/export/"))
		}
		t0 := time.Now()
		var ps []*proc
		for i := range benchShard {
			ps = append(ps, start(ctx, b, fmt.Sprintf("shard-%d", i), childEnv(), args(em, fmt.Sprintf("state/skew%03d", n), "--shard", fmt.Sprintf("%d/%d", i, benchShard))...))
		}
		for _, p := range ps {
			if code := p.wait(); code != 0 {
				b.Fatalf("%s exit %d\n%s", p.name, code, p.output())
			}
		}
		sharded := time.Since(t0)
		t1 := time.Now()
		one := start(ctx, b, "unsharded", childEnv(), args(ref, fmt.Sprintf("state/ones%03d", n))...)
		if code := one.wait(); code != 0 {
			b.Fatalf("unsharded exit %d\n%s", code, one.output())
		}
		unsharded := time.Since(t1)
		cancel()
		if st := em.Stats(); st.Responses[429] != 0 || int(st.EventsAccepted) != objects*(hotPer+coldPer) {
			b.Fatalf("sharded: %d 429s, %d accepted", st.Responses[429], st.EventsAccepted)
		}
		b.ReportMetric(sharded.Seconds(), "sharded-s")
		b.ReportMetric(unsharded.Seconds(), "unsharded-s")
		b.ReportMetric(lower.Seconds(), "lowerbound-s")
		b.ReportMetric(sharded.Seconds()/lower.Seconds(), "sharded/lowerbound")
		b.ReportMetric(unsharded.Seconds()/lower.Seconds(), "unsharded/lowerbound")
		b.Logf("makespan: sharded %s, unsharded %s, lower bound %s; max window %.1f events/s per id (--eps %d)",
			sharded.Round(time.Millisecond), unsharded.Round(time.Millisecond), lower, em.MaxWindowEPS(), benchEPS)
	}
}
