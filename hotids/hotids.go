// Package hotids finds the ids that carry the most events, in bounded
// memory.
//
// Counter is lossy counting (Manku and Motwani, 2002): every id whose true
// count exceeds Epsilon·N is kept, and its kept count undercounts by at most
// Epsilon·N, where N is the number of events added. Memory is
// O(1/Epsilon · log(Epsilon·N)) entries whatever the number of distinct ids.
package hotids

import (
	"math"
	"sort"
)

// DefaultEpsilon keeps every id with more than 0.01% of the events.
const DefaultEpsilon = 0.0001

// Counter counts events per id in bounded memory. The zero value is not
// usable; call New. It is not safe for concurrent use.
type Counter struct {
	width int64 // bucket width, 1/epsilon
	n     int64
	m     map[string]entry
}

type entry struct{ count, delta int64 }

// New returns a counter; epsilon <= 0 means DefaultEpsilon.
func New(epsilon float64) *Counter {
	if epsilon <= 0 {
		epsilon = DefaultEpsilon
	}
	return &Counter{width: int64(math.Ceil(1 / epsilon)), m: make(map[string]entry)}
}

// Add counts one event of id. Empty ids are ignored.
func (c *Counter) Add(id string) { c.AddN(id, 1) }

// AddN counts w events of id at once: a caller that samples one event in w
// adds it with weight w. Empty ids are ignored.
func (c *Counter) AddN(id string, w int64) {
	if id == "" || w <= 0 {
		return
	}
	before := c.n
	c.n += w
	bucket := (c.n + c.width - 1) / c.width
	if e, ok := c.m[id]; ok {
		e.count += w
		c.m[id] = e
	} else {
		c.m[id] = entry{count: w, delta: bucket - 1}
	}
	if c.n/c.width != before/c.width {
		for k, e := range c.m {
			if e.count+e.delta <= bucket {
				delete(c.m, k)
			}
		}
	}
}

// IDCount is an id and its (possibly under-) counted events.
type IDCount struct {
	ID    string `json:"id"`
	Count int64  `json:"count"`
}

// Top returns the k ids with the highest kept counts, highest first. A
// returned count is at most Epsilon·Total below the true count.
func (c *Counter) Top(k int) []IDCount {
	out := make([]IDCount, 0, len(c.m))
	for id, e := range c.m {
		out = append(out, IDCount{id, e.count})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].ID < out[j].ID
	})
	if len(out) > k {
		out = out[:k]
	}
	return out
}
