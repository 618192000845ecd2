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
