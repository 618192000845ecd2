package chunker

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/backfillhq/backfill/amplitude"
)

// DefaultWindow is the span over which Amplitude averages events per id:
// "EPDS ... averaged over 30 s" (amplitude-api.md §5).
const DefaultWindow = amplitude.Window

// DefaultEPS is the per-id pace used when none is configured: the 300 events/s
// per device that Amplitude's backfill guidance recommends (§5).
const DefaultEPS = amplitude.DefaultEPS

// slack widens the window the budget remembers, so that a request sent just
// after an old one leaves our window but before it leaves the server's
// (requests take time to arrive) cannot tip the server over.
const slack = time.Second

// Budget is a per-id sliding-window rate budget shared by every lane: an id
// may spend at most EPS*Window events in any Window. An event spends budget on
// both its device_id and its user_id. Budget is safe for concurrent use.
//
// Memory stays flat however many distinct ids a run meets: ids are first
// counted in a count-min sketch over the last two window-long epochs, whose
// estimate never undercounts an id's events in the sliding window. Only an
// id whose estimate reaches half its budget is tracked exactly, as a short
// list of (second, count) steps seeded with that estimate (so the switch can
// only make the budget stricter); exact ids whose steps all expired are
// dropped. A cold id thus costs no memory of its own.
type Budget struct {
	mu     sync.Mutex
	limit  int                  // events per window
	window int64                // seconds, including slack
	step   int64                // seconds per counting step
	ids    [2]map[string]*steps // exactly tracked ids, by Kind
	sk     [2]*sketch           // approximate counts of the other ids, made on first use
	// sketched selects the sketch for cold ids; without it every id is
	// tracked exactly.
	sketched bool
	paused   [2]map[string]held
	sweep    int64 // next second at which expired ids are dropped
	// Until second coldUntil, ids not tracked exactly may already have
	// spent coldDebt events at second coldSec in a killed run (see
	// SeedCold).
	coldDebt           int
	coldSec, coldUntil int64
	// flights are the lanes' requests in flight (see flight).
	flights map[*flight]struct{}
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
	last  int64 // second of the last spend
	fly   int   // events of total in requests still in flight
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
	b := newBudget(limit, window+slack, time.Second)
	b.sketched = limit > 0
	return b
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
	b := newBudget(max(limit, 0), DailyWindow+DailyStep, DailyStep)
	b.sketched = limit > 0
	return b
}

func newBudget(limit int, window, step time.Duration) *Budget {
	b := &Budget{limit: limit, window: int64(window / time.Second), step: int64(step / time.Second)}
	for k := range b.ids {
		b.ids[k] = make(map[string]*steps)
		b.paused[k] = make(map[string]held)
	}
	return b
}

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

// take spends up to want events of id's budget at now and returns how many
// it granted. h is hashID(id), computed once per event for every budget
// (the lane computes it when the event is pushed, while the id's bytes are
// still in the cache). b.mu must be held.
func (b *Budget) take(k Kind, id string, h uint64, now int64, want int) int {
	if b.limit == 0 {
		return want
	}
	st := b.ids[k][id]
	if st == nil {
		var est int
		debt := b.debtAt(now)
		if b.sketched {
			sk := b.sk[k]
			if sk == nil {
				sk = newSketch(b.window)
				b.sk[k] = sk
			}
			var ok bool
			if est, ok = sk.addIfUnder(h, now, want, b.sketchLimit(now)); ok {
				return want
			}
		}
		// Track the id exactly from now on, assuming the sketch's
		// (over)estimate was spent this second.
		st = &steps{}
		if debt > 0 {
			st.s = append(st.s, step{sec: b.coldSec - b.coldSec%b.step, n: debt})
			st.total = debt
		}
		if est > 0 {
			st.s = append(st.s, step{sec: now - now%b.step, n: est})
			st.total += est
		}
		b.ids[k][id] = st
		b.promoteFlying(k, h, st)
	}
	b.expire(st, now)
	n := min(want, b.limit-st.total)
	if n <= 0 {
		return 0
	}
	st.last = now
	now -= now % b.step
	if k := len(st.s); k > 0 && st.s[k-1].sec == now {
		st.s[k-1].n += n
	} else {
		st.s = append(st.s, step{sec: now, n: n})
	}
	st.total += n
	return n
}

// give returns n events just taken at now to id's budget (the event was
// not sent after all). h is hashID(id), as for take. b.mu must be held.
func (b *Budget) give(k Kind, id string, h uint64, now int64, n int) {
	if b.limit == 0 || n <= 0 {
		return
	}
	if st := b.ids[k][id]; st != nil {
		if last := len(st.s) - 1; last >= 0 {
			st.s[last].n -= n
			st.total -= n
		}
		return
	}
	if sk := b.sk[k]; sk != nil {
		sk.add(h, now, -n)
	}
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
			// An id is dropped only once the sketch has forgotten it too
			// (two epochs): dropped earlier, it would be promoted again
			// from the sketch's stale count and paced at half its budget.
			if st.total == 0 && st.fly == 0 && now-st.last > 2*b.window {
				delete(b.ids[k], id)
			}
		}
	}
}

// held is a pause of one id: until when, and whether it is a park (the
// id is over its daily quota) rather than a 429 pause.
type held struct {
	until time.Time
	park  bool
}

// Pause stops id from spending any budget until until: the reaction to a 429
// that names the id in throttled_devices/throttled_users.
func (b *Budget) Pause(k Kind, id string, until time.Time) { b.hold(k, id, until, false) }

// Park stops id from spending any budget until until, like Pause, because
// the id is over Amplitude's daily quota: a lane whose queued events all
// wait for parked ids (or for the daily budget) says so in Batch.Parked.
func (b *Budget) Park(k Kind, id string, until time.Time) { b.hold(k, id, until, true) }

func (b *Budget) hold(k Kind, id string, until time.Time, park bool) {
	if id == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur, ok := b.paused[k][id]; !ok || until.After(cur.until) {
		b.paused[k][id] = held{until: until, park: park}
	}
}

// pausedUntil reports when id's pause ends, or the zero time, and whether
// it is a park.
func (b *Budget) pausedUntil(k Kind, id string, now time.Time) (time.Time, bool) {
	if len(b.paused[k]) == 0 {
		return time.Time{}, false
	}
	h, ok := b.paused[k][id]
	if !ok {
		return time.Time{}, false
	}
	if !h.until.After(now) {
		delete(b.paused[k], id)
		return time.Time{}, false
	}
	return h.until, h.park
}

// sketch is a count-min sketch of events per id over the current and the
// previous epoch of window seconds: their sum covers any sliding window of
// that length ending now, and a count-min estimate never undercounts, so
// estimate(id) ≥ the id's true events in the window.
//
// The two epochs' counters of a slot sit side by side (cell[e&1] counts
// epoch e), so an estimate touches one cache line per row, not two.
type sketch struct {
	window int64
	epoch  int64
	rows   [sketchRows][]cell
}

type cell [2]int32

const (
	sketchRows  = 4
	sketchWidth = 1 << 17 // 4 rows × 128 Ki × 8 B = 4 MiB per kind
)

// hashSeed seeds hashID for every sketch, so an id is hashed once per event
// for all the budgets it spends.
var hashSeed = maphash.MakeSeed()

// hashID is the sketch hash of id.
func hashID(id string) uint64 { return maphash.String(hashSeed, id) }

func newSketch(window int64) *sketch {
	s := &sketch{window: window}
	for r := range sketchRows {
		s.rows[r] = make([]cell, sketchWidth)
	}
	return s
}

// roll advances the epochs to the one holding now.
func (s *sketch) roll(now int64) {
	e := now / s.window
	switch {
	case e == s.epoch:
		return
	case e == s.epoch+1:
		// Epoch e takes the counters of epoch e-2, which leaves the window.
		p := e & 1
		for r := range sketchRows {
			row := s.rows[r]
			for i := range row {
				row[i][p] = 0
			}
		}
	default:
		for r := range sketchRows {
			clear(s.rows[r])
		}
	}
	s.epoch = e
}

// slot returns the counter index of hash h in row r.
func slot(h uint64, r int) uint64 {
	// Derive the rows' indexes from one 64-bit hash (Kirsch-Mitzenmacher).
	return (h + uint64(r)*(h>>32|1)) % sketchWidth
}

func (s *sketch) estimate(h uint64, now int64) int {
	s.roll(now)
	est := int32(1<<31 - 1)
	for r := range sketchRows {
		c := &s.rows[r][slot(h, r)]
		est = min(est, c[0]+c[1])
	}
	return int(est)
}

func (s *sketch) add(h uint64, now int64, n int) {
	s.roll(now)
	p := s.epoch & 1
	for r := range sketchRows {
		s.rows[r][slot(h, r)][p] += int32(n)
	}
}

// addIfUnder returns the estimate of h and, when the estimate plus n is at
// most half of limit, adds n and reports true: estimate and add in one
// pass over the rows.
func (s *sketch) addIfUnder(h uint64, now int64, n, limit int) (int, bool) {
	s.roll(now)
	var cs [sketchRows]*cell
	est := int32(1<<31 - 1)
	for r := range sketchRows {
		c := &s.rows[r][slot(h, r)]
		cs[r] = c
		est = min(est, c[0]+c[1])
	}
	if 2*(int(est)+n) > limit {
		return int(est), false
	}
	p := s.epoch & 1
	for _, c := range cs {
		c[p] += int32(n)
	}
	return int(est), true
}
