package emulator

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// refCounter is the counter as it was before it skipped dropped slots: it
// moved the live slots to the front of the slice on every drop.
type refCounter struct {
	b   []bucket
	sum int64
}

func (c *refCounter) count(cur, span int64) int64 {
	oldest := cur - span + 1
	i := 0
	for i < len(c.b) && c.b[i].idx < oldest {
		c.sum -= c.b[i].n
		i++
	}
	if i > 0 {
		c.b = append(c.b[:0], c.b[i:]...)
	}
	return c.sum
}

func (c *refCounter) add(cur, n int64) {
	c.sum += n
	if k := len(c.b); k > 0 && c.b[k-1].idx >= cur {
		c.b[k-1].n += n
		return
	}
	c.b = append(c.b, bucket{idx: cur, n: n})
}

// TestCounterMatchesRef checks the counter against refCounter with a clock
// that mostly moves forward, sometimes jumps and sometimes goes back.
func TestCounterMatchesRef(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const span = 30
	for range 200 {
		var c counter
		var ref refCounter
		cur := int64(1000)
		for range 500 {
			switch d := r.IntN(20); {
			case d == 0:
				cur += int64(r.IntN(3 * span))
			case d == 1:
				cur -= int64(r.IntN(40))
			default:
				cur += int64(r.IntN(3))
			}
			if got, want := c.count(cur, span), ref.count(cur, span); got != want {
				t.Fatalf("count(%d) = %d, want %d", cur, got, want)
			}
			if r.IntN(4) > 0 {
				n := int64(1 + r.IntN(5))
				c.add(cur, n)
				ref.add(cur, n)
			}
			if got, want := c.b[c.head:], ref.b; !slices.Equal(got, want) {
				t.Fatalf("live slots %v, want %v", got, want)
			}
		}
	}
}
