package chunker

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Spent is what one exactly tracked id spent of its budget recently:
// (unix second, events) steps, oldest first. A step at second InFlight
// (first) holds the events of requests still in flight.
type Spent struct {
	Kind  Kind
	ID    string
	Steps [][2]int64
}

// Recent appends to dst the recent spending of every exactly tracked id
// with events in the window ending at now, sorted by kind and id, so a
// checkpoint can hand it to the next run's Seed. Ids only in the sketch are
// not listed: they spent less than half their budget (see SeedCold).
//
// Spends of requests that ended are stamped at their end (see flight); the
// events of requests in flight are listed at InFlight, because the server
// may count them at any moment until the run ends, and taken off the
// oldest steps, which hold them or older events.
func (b *Budget) Recent(dst []Spent, now time.Time) []Spent {
	if b.limit == 0 {
		return dst
	}
	sec := now.Unix()
	b.mu.Lock()
	b.refly(sec)
	start := len(dst)
	for k := range b.ids {
		for id, st := range b.ids[k] {
			b.expire(st, sec)
			if st.total <= 0 {
				continue
			}
			s := Spent{Kind: Kind(k), ID: id, Steps: make([][2]int64, 0, len(st.s)+1)}
			fly := min(st.fly, st.total)
			if fly > 0 {
				s.Steps = append(s.Steps, [2]int64{InFlight, int64(fly)})
			}
			for _, x := range st.s {
				n := x.n
				if fly > 0 && n > 0 {
					d := min(fly, n)
					n -= d
					fly -= d
				}
				if n > 0 {
					s.Steps = append(s.Steps, [2]int64{x.sec, int64(n)})
				}
			}
			dst = append(dst, s)
		}
	}
	b.mu.Unlock()
	slices.SortFunc(dst[start:], func(a, c Spent) int { return cmp.Or(cmp.Compare(a.Kind, c.Kind), strings.Compare(a.ID, c.ID)) })
	return dst
}

// Seed adds what id spent in an earlier run (sends as Recent lists them) to
// its budget, so a resumed run does not spend again what the window still
// holds. Steps that left the window ending at now are ignored; a step at
// InFlight counts from now, the earliest moment the killed run is known to
// have ended.
func (b *Budget) Seed(k Kind, id string, sends [][2]int64, now time.Time) {
	if b.limit == 0 || id == "" {
		return
	}
	sec := now.Unix()
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.ids[k][id]
	if st == nil {
		st = &steps{}
		b.ids[k][id] = st
	}
	for _, x := range sends {
		if x[0] == InFlight {
			x[0] = sec
		}
		if x[0] <= sec-b.window || x[1] <= 0 {
			continue
		}
		s := step{sec: x[0] - x[0]%b.step, n: int(x[1])}
		i, _ := slices.BinarySearchFunc(st.s, s.sec, func(e step, t int64) int { return cmp.Compare(e.sec, t) })
		if i < len(st.s) && st.s[i].sec == s.sec {
			st.s[i].n += s.n
		} else {
			st.s = slices.Insert(st.s, i, s)
		}
		st.total += s.n
		st.last = max(st.last, s.sec)
	}
}

// SeedCold assumes that every id not tracked exactly may have spent debt
// events of its budget by active, the last moment an earlier run was seen
// sending (debt as that run's ColdNext reported it). Until that leaves the
// window, such ids may spend only a small share untracked (see ColdNext)
// and an id tracked exactly from then on starts with the debt. A zero
// active, a debt <= 0, or an active already out of the window changes
// nothing.
func (b *Budget) SeedCold(debt int, active, now time.Time) {
	if b.limit == 0 || active.IsZero() || debt <= 0 {
		return
	}
	sec := active.Unix()
	if sec <= now.Unix()-b.window {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.coldDebt, b.coldSec, b.coldUntil = min(debt, b.limit), sec, sec+b.window
}

// coldShare is the part of the budget an id may spend untracked while a
// cold debt is in force: small, so that runs killed one after the other
// within a window add little to the next one's debt.
func (b *Budget) coldShare(debt int) int {
	return max(0, min(b.limit/32, b.limit-debt))
}

// sketchLimit is the limit the sketch admits cold ids under at second now:
// below half of it they stay untracked. b.mu must be held.
func (b *Budget) sketchLimit(now int64) int {
	if d := b.debtAt(now); d > 0 {
		return 2 * b.coldShare(d)
	}
	return b.limit
}

// ColdNext returns what a run resuming after this one must assume every id
// that Recent does not list has spent in the window ending at now: what the
// sketch let it spend untracked here (half the budget, or the small share
// while a cold debt is in force) on top of the debt this run started with.
func (b *Budget) ColdNext(now time.Time) int {
	if b.limit == 0 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := b.debtAt(now.Unix()); d > 0 {
		return min(b.limit, d+b.coldShare(d))
	}
	return b.FreshDebt()
}

// FreshDebt is what ColdNext reports for a run that started without a
// debt: half the budget, what the sketch lets an id spend untracked.
func (b *Budget) FreshDebt() int { return (b.limit + 1) / 2 }

// debtAt is the cold debt at second now. b.mu must be held.
func (b *Budget) debtAt(now int64) int {
	if now >= b.coldUntil {
		return 0
	}
	return b.coldDebt
}
