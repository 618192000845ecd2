package checkpoint

import (
	"maps"
	"slices"
)

// Test-only views of a Tracker and a one-record settle. Production code
// reads the tracker through Fill and settles through SettleWith and
// SettleEvents; these keep the tests short.

// Snapshot returns a deep copy of every object's progress.
func (t *Tracker) Snapshot() map[string]*Object {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.snapshot()
}

// Counters returns a copy of the job counters.
func (t *Tracker) Counters() Counters {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counters.clone()
}

// Skip reports whether record of object is settled.
func (t *Tracker) Skip(object string, record int64) bool {
	return t.settledRecord(object, record)
}

// Objects returns the URLs of all tracked objects, sorted.
func (t *Tracker) Objects() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Sorted(maps.Keys(t.objs))
}
