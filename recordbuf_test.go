package backfill

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

func TestCloneRecordData(t *testing.T) {
	for _, n := range []int{0, 1, 63, 2*recordClass - RecordHeadroom, 445, maxPooledRecord - RecordHeadroom, maxPooledRecord, 100_000} {
		in := bytes.Repeat([]byte{'x'}, n)
		for range 3 { // fresh, then (maybe) recycled
			b := CloneRecordData(in)
			if !bytes.Equal(b, in) || cap(b)-len(b) < RecordHeadroom {
				t.Fatalf("n=%d: len %d cap %d, content equal %v", n, len(b), cap(b), bytes.Equal(b, in))
			}
			ReleaseRecordData(b)
		}
	}
	// Buffers of any capacity may be released.
	ReleaseRecordData(nil)
	ReleaseRecordData(make([]byte, 3, 100))
	ReleaseRecordData(make([]byte, 0, 1<<20))
}

// Recycled buffers never hold two records at once: concurrent writers each
// check that their record is intact until they release it.
func TestRecordDataRecycledSafely(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				rec := fmt.Appendf(nil, `{"g":%d,"i":%d,"pad":"%s"}`, g, i, bytes.Repeat([]byte{'a' + byte(g)}, i%700))
				b := CloneRecordData(rec)
				b = append(b, ",more"...) // splice into the headroom
				if !bytes.Equal(b[:len(rec)], rec) {
					t.Errorf("record overwritten: %q", b)
					return
				}
				ReleaseRecordData(b)
			}
		})
	}
	wg.Wait()
}

func BenchmarkCloneRecordData(b *testing.B) {
	rec := bytes.Repeat([]byte{'x'}, 445)
	b.ReportAllocs()
	for b.Loop() {
		ReleaseRecordData(CloneRecordData(rec))
	}
}
