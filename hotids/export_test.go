package hotids

// Total returns the number of events added.
func (c *Counter) Total() int64 { return c.n }

// Max returns the highest kept count (0 when empty).
func (c *Counter) Max() int64 {
	var m int64
	for _, e := range c.m {
		m = max(m, e.count)
	}
	return m
}
