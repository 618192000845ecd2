package mapping

import (
	"sort"
	"sync"
	"sync/atomic"
)

// Stats are the Mapper's counters since New.
type Stats struct {
	Mapped      int64 // events returned
	FastPath    int64 // of Mapped, passed through without re-encoding
	Repaired    int64 // of Mapped, events with at least one repair
	Truncated   int64 // strings truncated to 1024 runes
	IDsStripped int64 // empty or blocked user_id/device_id removed
	BlockedIDs  int64 // of IDsStripped, ids on Amplitude's blocked list
	Derived     int64 // insert_ids derived (position, hash or dead-letter entry)
	Refed       int64 // dead-letter entries unwrapped
	Filtered    int64 // records dropped by filters
	Skipped     int64 // records skipped as excluded at the source
	Rejected    int64 // records rejected
	// RejectedBy counts rejections per code (validate.Code* and Code*).
	RejectedBy map[string]int64
}

type counters struct {
	mapped, fast, repaired, truncated, stripped, derived, refed, filtered, rejected atomic.Int64
	skipped, blockedIDs                                                             atomic.Int64
	byCode                                                                          sync.Map // code -> *atomic.Int64
}

func (c *counters) reject(code string) {
	c.rejected.Add(1)
	v, ok := c.byCode.Load(code)
	if !ok {
		v, _ = c.byCode.LoadOrStore(code, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// Stats returns a snapshot of the counters.
func (m *Mapper) Stats() Stats {
	c := &m.stats
	s := Stats{
		Mapped: c.mapped.Load(), FastPath: c.fast.Load(), Repaired: c.repaired.Load(),
		Truncated: c.truncated.Load(), IDsStripped: c.stripped.Load(), Derived: c.derived.Load(),
		Refed: c.refed.Load(), Filtered: c.filtered.Load(), Rejected: c.rejected.Load(),
		Skipped: c.skipped.Load(), BlockedIDs: c.blockedIDs.Load(),
		RejectedBy: map[string]int64{},
	}
	c.byCode.Range(func(k, v any) bool {
		s.RejectedBy[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return s
}

// Codes returns the keys of RejectedBy, sorted.
func (s Stats) Codes() []string {
	out := make([]string, 0, len(s.RejectedBy))
	for k := range s.RejectedBy {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
