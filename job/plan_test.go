package job_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/job"
	"github.com/backfillhq/backfill/reader"
)

// writePartitions writes one hive partition dt=2024-06-0N/ per count, of
// that many events spread over 200 devices.
func writePartitions(t *testing.T, counts ...int) string {
	t.Helper()
	root := t.TempDir()
	for p, n := range counts {
		dir := filepath.Join(root, fmt.Sprintf("dt=2024-06-%02d", p+1))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `{"event_type":"view","device_id":"device-%04d","time":%d,"insert_id":"p%d-%d"}`+"\n", i%200, 1717200000000+int64(p)*86400000+int64(i), p, i)
		}
		if err := os.WriteFile(filepath.Join(dir, "part-0.jsonl"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestPlanTail(t *testing.T) {
	tests := []struct {
		name   string
		counts []int
		flags  func(*job.Config)
		want   []string // tail partitions
	}{
		// The case: the third 8,000-event day fits --tail-events
		// but is as big as the days before it.
		{"SmallTrailing", []int{8000, 8000, 8000, 150, 150}, nil, []string{"dt=2024-06-04/", "dt=2024-06-05/"}},
		{"OnePartition", []int{150}, nil, nil},
		{"AllAlike", []int{150, 150, 150, 150}, nil, nil},
		{"TailEventsCap", []int{8000, 8000, 8000, 150, 150}, func(c *job.Config) { c.TailEvents = 200 }, []string{"dt=2024-06-05/"}},
		{"RatioFlag", []int{8000, 8000, 8000, 3000, 150}, func(c *job.Config) { c.TailRatio = 0.5 }, []string{"dt=2024-06-04/", "dt=2024-06-05/"}},
		{"DefaultRatio", []int{8000, 8000, 8000, 3000, 150}, nil, []string{"dt=2024-06-05/"}},
		{"Batch", []int{8000, 150}, func(c *job.Config) { c.Route = job.RouteBatch }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writePartitions(t, tt.counts...)
			cfg := job.Config{Sources: []string{root}, APIKey: "unused", Checkpoint: t.TempDir()}
			if tt.flags != nil {
				tt.flags(&cfg)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			rd, err := reader.New(reader.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			p, err := job.Plan(context.Background(), rd, &cfg)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, part := range p.Tail {
				got = append(got, part.Name[strings.LastIndex(strings.TrimSuffix(part.Name, "/"), "/")+1:])
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("tail %v, want %v (stop: %s)", got, tt.want, p.Stop)
			}
			if p.Objects != len(tt.counts) || len(p.Listed) != len(tt.counts) {
				t.Errorf("objects %d, listed %d, want %d", p.Objects, len(p.Listed), len(tt.counts))
			}
		})
	}
}
