package chunker

import (
	"sync"
	"time"
)

// DefaultWindow is the span over which Amplitude averages events per id:
// "EPDS ... averaged over 30 s" (amplitude-api.md §5).
const DefaultWindow = 30 * time.Second

// DefaultEPS is the per-id pace used when none is configured: the 300 events/s
// per device that Amplitude's backfill guidance recommends (§5).
const DefaultEPS = 300

// slack widens the window the budget remembers, so that a request sent just
// after an old one leaves our window but before it leaves the server's
// (requests take time to arrive) cannot tip the server over.
const slack = time.Second

// Budget is a per-id sliding-window rate budget shared by every lane: an id
// may spend at most EPS*Window events in any Window. An event spends budget on
// both its device_id and its user_id. Budget is safe for concurrent use.
//
// Memory is O(ids active in the last window): each id keeps a short list of
// (second, count) steps and ids whose steps all expired are dropped.
type Budget struct {
	mu     sync.Mutex
	limit  int                  // events per window
	window int64                // seconds, including slack
	step   int64                // seconds per counting step
	ids    [2]map[string]*steps // by Kind
	paused [2]map[string]time.Time
	sweep  int64 // next second at which expired ids are dropped
}

// Kind tells device ids from user ids: Amplitude limits each separately.
type Kind uint8

const (
	// Device is a device_id.
	Device Kind = iota
	// User is a user_id.
	User
)

type step struct {
	sec int64
	n   int
}

type steps struct {
	s     []step
	total int
}

// NewBudget returns a budget of eps events per second averaged over window.
// eps <= 0 means unlimited; window <= 0 means DefaultWindow.
func NewBudget(eps int, window time.Duration) *Budget {
	if window <= 0 {
		window = DefaultWindow
	}
	limit := 0
	if eps > 0 {
		limit = eps * int(window/time.Second)
	}
	return newBudget(limit, window+slack, time.Second)
}

// DailyWindow and DailyStep describe Amplitude's daily quota: a rolling
// 24 h window that moves in 1 h steps (amplitude-api.md §5).
const (
	DailyWindow = 24 * time.Hour
	DailyStep   = time.Hour
)

// NewDailyBudget returns a budget of limit events per id over a rolling
// 24 h counted in 1 h steps, to stay under Amplitude's daily quota before it
// answers 429. limit <= 0 means unlimited.
func NewDailyBudget(limit int) *Budget {
	return newBudget(max(limit, 0), DailyWindow+DailyStep, DailyStep)
}

func newBudget(limit int, window, step time.Duration) *Budget {
	b := &Budget{limit: limit, window: int64(window / time.Second), step: int64(step / time.Second)}
	for k := range b.ids {
		b.ids[k] = make(map[string]*steps)
		b.paused[k] = make(map[string]time.Time)
	}
	return b
}

// Limit returns the number of events one id may send per window, 0 when
// unlimited.
func (b *Budget) Limit() int { return b.limit }

func (b *Budget) expire(st *steps, now int64) {
	cut := 0
	for cut < len(st.s) && st.s[cut].sec <= now-b.window {
		st.total -= st.s[cut].n
		cut++
	}
	if cut > 0 {
		st.s = append(st.s[:0], st.s[cut:]...)
	}
}

// available returns how many more events id may send at now.
func (b *Budget) available(k Kind, id string, now int64) int {
	if b.limit == 0 {
		return 1 << 30
	}
	st := b.ids[k][id]
	if st == nil {
		return b.limit
	}
	b.expire(st, now)
	return b.limit - st.total
}

func (b *Budget) spend(k Kind, id string, now int64, n int) {
	if b.limit == 0 {
		return
	}
	st := b.ids[k][id]
	if st == nil {
		st = &steps{}
		b.ids[k][id] = st
	}
	now -= now % b.step
	if k := len(st.s); k > 0 && st.s[k-1].sec == now {
		st.s[k-1].n += n
	} else {
		st.s = append(st.s, step{sec: now, n: n})
	}
	st.total += n
}

// nextFree returns how long until id has budget again at now.
func (b *Budget) nextFree(k Kind, id string, now int64) time.Duration {
	st := b.ids[k][id]
	if st == nil || len(st.s) == 0 {
		return 0
	}
	over := st.total - b.limit + 1
	for _, s := range st.s {
		over -= s.n
		if over <= 0 {
			return time.Duration(s.sec+b.window-now) * time.Second
		}
	}
	return time.Duration(b.window) * time.Second
}

func (b *Budget) gc(now int64) {
	if now < b.sweep {
		return
	}
	b.sweep = now + b.window
	for k := range b.ids {
		for id, st := range b.ids[k] {
			b.expire(st, now)
			if st.total == 0 {
				delete(b.ids[k], id)
			}
		}
	}
}

// Tracked returns how many ids currently hold budget state (for tests and
// memory accounting).
func (b *Budget) Tracked() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.ids[Device]) + len(b.ids[User])
}

// Pause stops id from spending any budget until until: the reaction to a 429
// that names the id in throttled_devices/throttled_users, or to a daily quota.
func (b *Budget) Pause(k Kind, id string, until time.Time) {
	if id == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur, ok := b.paused[k][id]; !ok || until.After(cur) {
		b.paused[k][id] = until
	}
}

// pausedUntil reports when id's pause ends, or the zero time.
func (b *Budget) pausedUntil(k Kind, id string, now time.Time) time.Time {
	if len(b.paused[k]) == 0 {
		return time.Time{}
	}
	until, ok := b.paused[k][id]
	if !ok {
		return time.Time{}
	}
	if !until.After(now) {
		delete(b.paused[k], id)
		return time.Time{}
	}
	return until
}
