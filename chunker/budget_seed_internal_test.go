package chunker

import (
	"fmt"
	"math/rand"
	"testing"
	"time"
)

// Runs are killed one after the other, each starting from the killed
// run's Recent (the exactly tracked ids) and ColdNext (what the others may
// have spent): whatever the mix of hot and cold ids, the moments of the
// kills and their number within a window, no id gets more than the limit
// within any window across the runs.
func TestBudgetSeedAcrossKill(t *testing.T) {
	for _, tt := range []struct {
		eps       int
		killAfter int // steps of each killed run
		pause     int64
		runs      int
	}{
		{5, 300, 0, 2}, {5, 600, 0, 2}, {5, 20000, 2, 2}, {20, 2000, 1, 2}, {20, 10000, 40, 2}, {300, 5000, 0, 2}, {300, 40000, 1, 2},
		{5, 200, 0, 12}, {20, 300, 0, 20}, {20, 1000, 1, 8}, {300, 3000, 0, 15},
	} {
		t.Run(fmt.Sprintf("eps%d-kill%d-pause%d-runs%d", tt.eps, tt.killAfter, tt.pause, tt.runs), func(t *testing.T) {
			warm := max(1, tt.killAfter/(tt.eps*30))
			r := rand.New(rand.NewSource(int64(tt.eps + tt.killAfter)))
			granted := map[string][]int64{}
			now := int64(1_700_000_000)
			drive := func(b *Budget, steps int) {
				for range steps {
					if r.Intn(50) == 0 {
						now += int64(r.Intn(3))
					}
					id := fmt.Sprintf("cold-%d", r.Intn(2000))
					switch r.Intn(6) {
					case 0, 1:
						id = fmt.Sprintf("hot-%d", r.Intn(3))
					case 2:
						// warm ids come close to half their budget
						// untracked, in the sketch
						id = fmt.Sprintf("warm-%d", r.Intn(warm))
					}
					b.mu.Lock()
					n := b.take(Device, id, hashID(id), now, 1+r.Intn(3))
					b.gc(now)
					b.mu.Unlock()
					for range n {
						granted[id] = append(granted[id], now)
					}
				}
			}
			// Runs killed one after the other, each resuming from the
			// last one's Recent and ColdNext.
			b1 := NewBudget(tt.eps, 0)
			b := b1
			for run := range tt.runs {
				if run == tt.runs-1 {
					drive(b, 60000)
					break
				}
				drive(b, tt.killAfter)
				killed := time.Unix(now, 0)
				recent, debt := b.Recent(nil, killed), b.ColdNext(killed)
				now += tt.pause
				b = NewBudget(tt.eps, 0)
				for _, s := range recent {
					b.Seed(s.Kind, s.ID, s.Steps, time.Unix(now, 0))
				}
				b.SeedCold(debt, killed, time.Unix(now, 0))
			}

			limit := b1.Limit()
			for id, secs := range granted {
				lo := 0
				for hi := range secs {
					for secs[hi]-secs[lo] >= b1.window {
						lo++
					}
					if hi-lo+1 > limit {
						t.Fatalf("%s: %d events within %d s across the kill, limit %d", id, hi-lo+1, b1.window, limit)
					}
				}
			}
		})
	}
}

// Recent lists what Seed restores, and the seeded budget blocks the id
// until its spending leaves the window.
func TestBudgetRecentSeed(t *testing.T) {
	b := NewBudget(10, 0) // 300 per window
	now := time.Unix(1_700_000_000, 0)
	b.mu.Lock()
	got := b.take(Device, "hot", hashID("hot"), now.Unix(), 300)
	b.mu.Unlock()
	if got != 300 {
		t.Fatalf("took %d, want 300", got)
	}
	rec := b.Recent(nil, now)
	if len(rec) != 1 || rec[0].ID != "hot" || rec[0].Kind != Device {
		t.Fatalf("Recent = %+v, want the hot device", rec)
	}
	b2 := NewBudget(10, 0)
	later := now.Add(2 * time.Second)
	b2.Seed(Device, "hot", rec[0].Steps, later)
	b2.mu.Lock()
	defer b2.mu.Unlock()
	if n := b2.take(Device, "hot", hashID("hot"), later.Unix(), 1); n != 0 {
		t.Errorf("a seeded, spent id got %d more events within its window", n)
	}
	if w := b2.nextFree(Device, "hot", later.Unix()); w != 29*time.Second {
		t.Errorf("seeded id free again in %v, want 29s (the window plus slack from its sends)", w)
	}
	if n := b2.take(Device, "hot", hashID("hot"), now.Unix()+31, 300); n != 300 {
		t.Errorf("got %d once the seeded spending left the window, want 300", n)
	}
	// Seeding with spending that already left the window changes nothing.
	b3 := NewBudget(10, 0)
	b3.Seed(Device, "hot", rec[0].Steps, now.Add(time.Minute))
	if b3.Recent(nil, now.Add(time.Minute)) != nil {
		t.Error("expired seeded spending is listed")
	}
}
