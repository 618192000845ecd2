package chunker

import (
	"fmt"
	"testing"
)

// Cold ids under the most hot ids a sketch can hold at this machine's rate
// (about 160,000 events/s over two 31 s epochs: 2,200 ids that each left
// half a budget) are rarely promoted and never reach the budget, so they
// are not delayed.
func TestSketchColdIDsUnderHotLoad(t *testing.T) {
	const limit = DefaultEPS * 30
	s := newSketch(31)
	now := int64(31 * 1000)
	for i := range 1 << 18 {
		s.add(hashID(fmt.Sprint("cold-", i)), now, 4)
	}
	for i := range 2200 {
		h := hashID(fmt.Sprint("hot-", i))
		for s.estimate(h, now) < limit/2 {
			if _, ok := s.addIfUnder(h, now, 100, limit); !ok {
				break
			}
		}
	}
	const probes = 100_000
	promoted := 0
	for i := range probes {
		est, ok := s.addIfUnder(hashID(fmt.Sprint("probe-", i)), now, 1, limit)
		if !ok {
			promoted++
		}
		if est+1 > limit {
			t.Fatalf("probe %d: estimate %d: a cold id would wait for budget", i, est)
		}
	}
	t.Logf("%d of %d cold ids promoted to exact tracking", promoted, probes)
	if promoted > probes/200 {
		t.Fatalf("%d of %d cold ids promoted to exact tracking", promoted, probes)
	}
}
