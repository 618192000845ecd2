package emulator

import "time"

const (
	// winBucket is the granularity of the throttle window: the window
	// covers the 300 most recent 100 ms buckets, so it spans 29.9–30 s.
	winBucket  = 100 * time.Millisecond
	winBuckets = int64(ThrottleWindow / winBucket)
	dayBucket  = time.Hour
	dayBuckets = 24
)

// bucket is one non-empty time slot of a sparse counter.
type bucket struct {
	idx int64 // slot number: unix time / slot length
	n   int64
}

// counter is a sparse sliding-window counter: only slots that received
// events are stored, oldest first, so an idle id costs nothing and a busy
// one at most `span` slots.
type counter struct {
	b    []bucket
	head int // b[:head] left the window
	sum  int64
}

// count drops slots that left the window ending at slot cur and returns the
// total of the rest. Dropped slots are skipped, and compacted away only
// once they outnumber the live ones, so a busy id does not move its whole
// window every time a slot leaves it.
func (c *counter) count(cur, span int64) int64 {
	oldest := cur - span + 1
	for c.head < len(c.b) && c.b[c.head].idx < oldest {
		c.sum -= c.b[c.head].n
		c.head++
	}
	if c.head > 0 && c.head >= len(c.b)-c.head {
		c.b = c.b[:copy(c.b, c.b[c.head:])]
		c.head = 0
	}
	return c.sum
}

// add counts n events in slot cur. A clock that moved backwards adds to the
// newest slot, keeping the slice ordered.
func (c *counter) add(cur, n int64) {
	c.sum += n
	if k := len(c.b); k > c.head && c.b[k-1].idx >= cur {
		c.b[k-1].n += n
		return
	}
	c.b = append(c.b, bucket{idx: cur, n: n})
}

// idState is everything the server keeps about one (api_key, id).
type idState struct {
	win  counter // 100 ms slots, throttle window
	day  counter // 1 h slots, daily quota
	peak int64   // largest window count right after an accepted request
	kind byte    // 'd' device, 'u' user
	id   string
}

// slots converts a time to the current window and day slot numbers.
func slots(now time.Time) (win, day int64) {
	ns := now.UnixNano()
	return floorDiv(ns, int64(winBucket)), floorDiv(ns, int64(dayBucket))
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// epsOf is the 30 s average rate, rounded up, that Amplitude reports.
func epsOf(n int64) int64 {
	w := int64(ThrottleWindow / time.Second)
	return (n + w - 1) / w
}
