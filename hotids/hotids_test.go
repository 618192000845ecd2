package hotids_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/backfillhq/backfill/hotids"
)

func TestCounterFindsHeavyHitters(t *testing.T) {
	c := hotids.New(0.001)
	r := rand.New(rand.NewSource(1))
	exact := map[string]int64{}
	for i := 0; i < 300000; i++ {
		id := fmt.Sprintf("cold-%d", r.Intn(100000))
		switch {
		case i%10 == 0:
			id = "hot-a"
		case i%25 == 0:
			id = "hot-b"
		}
		exact[id]++
		c.Add(id)
	}
	top := c.Top(2)
	if len(top) != 2 || top[0].ID != "hot-a" || top[1].ID != "hot-b" {
		t.Fatalf("top=%v", top)
	}
	bound := int64(0.001 * float64(c.Total()))
	for _, tc := range top {
		if d := exact[tc.ID] - tc.Count; d < 0 || d > bound {
			t.Fatalf("%s: kept %d, exact %d, bound %d", tc.ID, tc.Count, exact[tc.ID], bound)
		}
	}
	if c.Max() != top[0].Count {
		t.Fatalf("Max=%d, want %d", c.Max(), top[0].Count)
	}
}

func TestCounterSmall(t *testing.T) {
	c := hotids.New(0)
	for i := 0; i < 10; i++ {
		c.Add(fmt.Sprint(i % 5))
	}
	c.Add("")
	if c.Total() != 10 {
		t.Fatalf("Total=%d", c.Total())
	}
	if top := c.Top(1); len(top) != 1 || top[0].Count != 2 || top[0].ID != "0" {
		t.Fatalf("Top=%v", top)
	}
}

// Sampling one event in w and adding it with weight w estimates the counts.
func TestCounterWeighted(t *testing.T) {
	c := hotids.New(0.001)
	for i := 0; i < 80000; i++ {
		id := fmt.Sprintf("cold-%d", i%5000)
		if i%5 == 0 {
			id = "hot"
		}
		if i%8 == 0 {
			c.AddN(id, 8)
		}
	}
	top := c.Top(1)
	if len(top) != 1 || top[0].ID != "hot" || top[0].Count < 15000 || top[0].Count > 17000 {
		t.Fatalf("top=%v, want hot with about 16000", top)
	}
	if c.Total() != 80000 {
		t.Fatalf("Total=%d", c.Total())
	}
}
