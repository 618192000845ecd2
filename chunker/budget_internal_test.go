package chunker

import (
	"fmt"
	"math/rand"
	"testing"
)

// Whatever the mix of hot and cold ids, no id is ever granted more than the
// limit within any window, and cold ids cost no exact state.
func TestBudgetWindowInvariant(t *testing.T) {
	for _, eps := range []int{1, 5, 300} {
		t.Run(fmt.Sprint(eps), func(t *testing.T) {
			b := NewBudget(eps, 0)
			r := rand.New(rand.NewSource(int64(eps)))
			granted := map[string][]int64{} // id -> seconds of granted events
			now := int64(1_700_000_000)
			for step := 0; step < 60000; step++ {
				if r.Intn(50) == 0 {
					now += int64(r.Intn(3))
				}
				id := fmt.Sprintf("cold-%d", r.Intn(20000))
				if r.Intn(3) == 0 {
					id = fmt.Sprintf("hot-%d", r.Intn(3))
				}
				want := 1 + r.Intn(3)
				b.mu.Lock()
				n := b.take(Device, id, hashID(id), now, want)
				if n > 0 && r.Intn(10) == 0 {
					b.give(Device, id, hashID(id), now, 1)
					n--
				}
				b.gc(now)
				b.mu.Unlock()
				for range n {
					granted[id] = append(granted[id], now)
				}
			}
			limit := b.Limit()
			for id, secs := range granted {
				lo := 0
				for hi := range secs {
					for secs[hi]-secs[lo] >= b.window {
						lo++
					}
					if hi-lo+1 > limit {
						t.Fatalf("%s: %d events within %d s, limit %d", id, hi-lo+1, b.window, limit)
					}
				}
			}
			if eps == 300 && b.Tracked() > 10 {
				t.Fatalf("%d ids tracked exactly; cold ids belong in the sketch", b.Tracked())
			}
		})
	}
}

// A hot id paced at its limit keeps its whole budget window after window:
// once tracked exactly it is not sent back to the sketch (whose stale count
// would halve its pace) while it stays active.
func TestBudgetHotIDKeepsFullPace(t *testing.T) {
	b := NewBudget(50, 0) // 1,500 events per window
	now := int64(1_700_000_000)
	sent := 0
	for w := 0; w < 6; w++ {
		b.mu.Lock()
		b.gc(now)
		n := 0
		for b.take(Device, "hot", hashID("hot"), now, 1) == 1 {
			n++
		}
		b.mu.Unlock()
		if n != b.Limit() {
			t.Fatalf("window %d: granted %d, want the full %d", w, n, b.Limit())
		}
		sent += n
		now += b.window
	}
}
