package chunker

import "testing"

// BenchmarkSketchAddIfUnder is one cold id's estimate-and-add, over 1 Mi
// distinct ids (the sketch does not fit in the caches).
func BenchmarkSketchAddIfUnder(b *testing.B) {
	s := newSketch(31)
	hs := make([]uint64, 1<<20)
	for i := range hs {
		hs[i] = hashID(string(rune(i)) + "-device")
	}
	now := int64(31 * 1000)
	i := 0
	for b.Loop() {
		s.addIfUnder(hs[i&(len(hs)-1)], now, 1, 9000)
		i++
	}
}
