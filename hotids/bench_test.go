package hotids_test

import (
	"fmt"
	"testing"

	"github.com/backfillhq/backfill/hotids"
)

// BenchmarkDispatchPattern counts device and user ids the way the
// pipeline's dispatcher does (every event of the first 65,536, then one in
// 8 with weight 8), over 50,000 uniformly drawn devices whose ids are
// separate strings per event, as parsed events' are. One op is one event.
func BenchmarkDispatchPattern(b *testing.B) {
	const n, devices = 1 << 20, 50000
	devs, users := make([]string, n), make([]string, n)
	for i := range n {
		d := (i * 2654435761) % devices
		devs[i] = fmt.Sprintf("%08x-1f2e-4d3c-8b4a-%012x", d*7919, d)
		if d%10 != 0 {
			users[i] = fmt.Sprintf("user-%07d", d)
		}
	}
	b.ReportAllocs()
	var dc, uc *hotids.Counter
	var counted int64
	i := 0
	for b.Loop() {
		if i%n == 0 {
			dc, uc, counted = hotids.New(0), hotids.New(0), 0
		}
		counted++
		if counted <= 1<<16 {
			dc.Add(devs[i%n])
			uc.Add(users[i%n])
		} else if counted%8 == 0 {
			dc.AddN(devs[i%n], 8)
			uc.AddN(users[i%n], 8)
		}
		i++
	}
}
