package checkpoint_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/backfillhq/backfill/checkpoint"
)

func BenchmarkSave(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("objects=%d", n), func(b *testing.B) {
			ctx := context.Background()
			s, err := checkpoint.Open(ctx, b.TempDir(), checkpoint.Options{})
			if err != nil {
				b.Fatal(err)
			}
			st := &checkpoint.State{Job: "f", Objects: map[string]*checkpoint.Object{}}
			for i := range n {
				st.Objects[fmt.Sprintf("s3://bucket/events/2024/05/01/part-%05d.jsonl.gz", i)] = &checkpoint.Object{
					Fingerprint: "etag-0123456789abcdef", Watermark: 123456, ResumeRecord: 123450, ResumeOffset: 987654321,
					Settled: [][2]int64{{123460, 123470}, {123480, 123490}}, Total: -1, Read: 123456, Accepted: 123400, Rejected: 56,
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				st.Counters.EventsRead++
				if err := s.Save(ctx, st); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
