package ceiling

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/amplitude"
)

// Defaults and constants of the controller (see the package doc).
const (
	// DefaultMaxEvents caps the events of one request when Options.MaxEvents
	// is zero: Amplitude's 2,000 per request.
	DefaultMaxEvents = amplitude.MaxEvents
	// Window is the span a ceiling is counted over: at most EPS events and
	// RPS requests in any Window (longer for a rate below one per second:
	// one per 1/rate).
	Window = time.Second
	// Pieces is how many requests of MaxEvents fill a window: requests are
	// kept this much smaller than the ceiling so that one leaving the
	// window makes room for the next.
	Pieces = 10
	// MaxNap is the longest a waiting request sleeps before it looks at the
	// rate again.
	MaxNap = 250 * time.Millisecond
	// FloorEPS is the lowest events ceiling adaptation goes to.
	FloorEPS = 1.0

	cut      = 0.95 // multiplicative decrease
	heavyCut = 0.5  // ... when nothing was taken in lately
	raise    = 0.01 // additive increase per second, as a share of the rate before the cut
	// minRaise is the least additive increase, in events/s per second: a
	// ceiling cut to its floor by an outage (cut from 1 event/s, 1% is
	// nothing) climbs back to 1,000 events/s in under two minutes of clean
	// answers instead of staying at a crawl for the rest of the job.
	minRaise = 10.0
	// measure is the span over which what the project took in is measured
	// at a cut (the ring of slots keeps that much).
	measure   = 2 * time.Second
	slot      = 100 * time.Millisecond
	slots     = int(measure / slot)
	bindingIn = time.Second // the ceiling "holds the run back" if it held a request this recently
)

// Outcome is what one response says about the project's load.
type Outcome uint8

const (
	// Other says nothing about the project's load: a 500 or 502, a refused
	// connection, a fatal 4xx.
	Other Outcome = iota
	// Clean means the project took the request in: a 2xx, a 400 or 429
	// naming events, a 413.
	Clean
	// Pushback is project-level overload: a 429 naming none of the
	// request's ids, a 503 or 504, a timeout.
	Pushback
)

// Options configures a Limiter. Zero values mean "none" or the default.
type Options struct {
	// EPS is the ceiling in events per second; 0 (or Inf) means none until
	// pushback sets one.
	EPS float64
	// RPS is the ceiling in requests per second, likewise.
	RPS float64
	// MaxEvents is the most events one request may carry anyway (the batch
	// size); default DefaultMaxEvents.
	MaxEvents int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends (returning ctx.Err()); default a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Ticket is handed out by Wait and given back to Done with the response.
type Ticket struct {
	gen    uint64 // the ceiling generation the request was sent at
	id     uint64 // the request's entry in the windows; 0 for none
	events int
}

// Stats is a snapshot of a Limiter.
type Stats struct {
	// EPS and RPS are the ceilings in force; 0 means none.
	EPS, RPS float64
	// ConfiguredEPS and ConfiguredRPS are Options.EPS and Options.RPS
	// (0 when none).
	ConfiguredEPS, ConfiguredRPS float64
	// HeldBack is how long requests waited for the ceiling in total (only
	// one waits at a time, so this is wall time).
	HeldBack time.Duration
	// Pushbacks counts responses that signalled project-level overload.
	Pushbacks int64
	// Cuts counts the times the ceiling was lowered.
	Cuts int64
	// Sent and Requests count the events and requests let through, Taken
	// the events of clean answers (what the project took in).
	Sent, Requests, Taken int64
}

// Limiter enforces and adapts the ceilings of one route.
type Limiter struct {
	now       func() time.Time
	sleep     func(context.Context, time.Duration) error
	maxEvents float64
	cfg       [2]float64 // configured ceilings (events, requests); Inf = none
	turn      chan struct{}

	mu        sync.Mutex
	b         [2]window // events, requests
	step      float64   // additive increase of the events ceiling per second, since the last cut
	gen       uint64    // incremented by every cut
	lastRaise time.Time
	lastHeld  time.Time
	ring      [slots]sample // what was let through and taken in, per slot, for measuring
	held      time.Duration
	pushbacks int64
	cuts      int64
	sent      int64
	requests  int64
	taken     int64 // events of clean answers
	seq       uint64
}

type sample struct {
	idx         int64
	sent, clean float64 // events let through, events of clean answers
}

// New returns a Limiter for opts.
func New(opts Options) (*Limiter, error) {
	for _, v := range []float64{opts.EPS, opts.RPS} {
		if v < 0 || math.IsNaN(v) {
			return nil, fmt.Errorf("ceiling: rate %v must be positive (or 0 for none)", v)
		}
	}
	if opts.MaxEvents < 0 {
		return nil, fmt.Errorf("ceiling: max events %d is negative", opts.MaxEvents)
	}
	l := &Limiter{now: opts.Now, sleep: opts.Sleep, maxEvents: float64(opts.MaxEvents), turn: make(chan struct{}, 1)}
	if l.now == nil {
		l.now = time.Now
	}
	if l.sleep == nil {
		l.sleep = backfill.Sleep
	}
	if l.maxEvents == 0 {
		l.maxEvents = DefaultMaxEvents
	}
	now := l.now()
	for i, v := range []float64{opts.EPS, opts.RPS} {
		if v == 0 {
			v = math.Inf(1)
		}
		l.cfg[i] = v
		l.b[i].set(v, now)
	}
	l.lastRaise = now
	return l, nil
}

// MaxEvents is the most events a request may carry now: 1/Pieces of what
// the events ceiling lets through in a window (at least 1), at most
// Options.MaxEvents. Callers split larger requests.
func (l *Limiter) MaxEvents() int {
	if l == nil {
		return math.MaxInt
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(min(max(math.Floor(l.b[0].capacity/Pieces), 1), l.maxEvents))
}

// Wait blocks until a request of n events may be sent without more than
// the ceilings in any window, or ctx ends. A request larger than a whole
// window's worth waits for an empty window. The Ticket goes back to Done
// with the response.
func (l *Limiter) Wait(ctx context.Context, n int) (Ticket, error) {
	if l == nil {
		return Ticket{}, ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		return Ticket{}, err
	}
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return Ticket{}, ctx.Err()
	}
	defer func() { <-l.turn }()
	need := [2]float64{float64(n), 1}
	for {
		l.mu.Lock()
		now := l.now()
		var d time.Duration
		for i := range l.b {
			d = max(d, l.b[i].delay(now, need[i]))
		}
		if d <= 0 {
			l.seq++
			for i := range l.b {
				l.b[i].add(l.seq, now, need[i])
			}
			l.record(now, n)
			t := Ticket{gen: l.gen, events: n, id: l.seq}
			l.mu.Unlock()
			return t, nil
		}
		l.mu.Unlock()
		d = min(d, MaxNap)
		err := l.sleep(ctx, d)
		l.mu.Lock()
		after := l.now()
		if waited := after.Sub(now); waited > 0 {
			l.held += waited
		}
		l.lastHeld = after
		l.mu.Unlock()
		if err != nil {
			return Ticket{}, err
		}
	}
}

// record counts what was let through at now; under mu.
func (l *Limiter) record(now time.Time, n int) {
	l.sent += int64(n)
	l.requests++
	l.slot(now).sent += float64(n)
}

// slot returns the ring slot of now, emptied if it held an older one;
// under mu.
func (l *Limiter) slot(now time.Time) *sample {
	idx := now.UnixNano() / int64(slot)
	s := &l.ring[int(idx%int64(slots)+int64(slots))%slots]
	if s.idx != idx {
		*s = sample{idx: idx}
	}
	return s
}

// measured returns the events let through and the events of clean answers
// per second over the last span (at most measure); under mu.
func (l *Limiter) measured(now time.Time, span time.Duration) (sent, clean float64) {
	cur := now.UnixNano() / int64(slot)
	n := int64(span / slot)
	for _, s := range l.ring {
		if s.idx > cur-n && s.idx <= cur {
			sent += s.sent
			clean += s.clean
		}
	}
	return sent / span.Seconds(), clean / span.Seconds()
}

// Done reports the response to the request of t; every Ticket must be
// given back (with Other when the request was abandoned), or its request
// keeps counting for a minute. For a Pushback it returns
// whether the ceiling absorbed it, i.e. was above its floor: the caller
// then resends without counting a failed attempt.
func (l *Limiter) Done(t Ticket, o Outcome) (absorbed bool) {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if t.id != 0 {
		for i := range l.b {
			l.b[i].answered(t.id, now)
		}
	}
	switch o {
	case Clean:
		l.taken += int64(t.events)
		l.slot(now).clean += float64(t.events)
		l.raiseLocked(now)
	case Pushback:
		l.pushbacks++
		atFloor := l.b[0].rate <= l.floor()
		if t.gen != l.gen {
			// Sent before the last cut: that cut already answered it.
			return !atFloor
		}
		if atFloor {
			return false
		}
		l.cutLocked(now)
		return true
	}
	return false
}

func (l *Limiter) cutLocked(now time.Time) {
	sent, _ := l.measured(now, Window)
	_, clean := l.measured(now, measure)
	factor := cut
	if clean == 0 {
		factor = heavyCut // nothing got in lately
	}
	cur, base := l.b[0].rate, l.b[0].rate
	if math.IsInf(cur, 1) || now.Sub(l.lastHeld) > bindingIn {
		// The ceiling was not what held the run back (there was none, or
		// the lanes could not fill it): cut from what was really sent.
		base = min(cur, max(sent, l.floor()))
	}
	next := base * factor
	if clean > 0 {
		// Never below most of what the project demonstrably took in over
		// the last measure span: a burst of answers to an overload must not cut
		// the rate to a fraction of the limit it is overloading.
		next = max(next, min(clean*cut, base))
	}
	l.b[0].set(max(next, l.floor()), now)
	if math.IsInf(cur, 1) {
		cur = base
		// The first ceiling starts with what was sent over the last
		// window, so that the lanes do not send it all again at once.
		l.seed(now)
	}
	l.step = max(cur*raise, minRaise)
	l.gen++
	l.cuts++
	l.lastRaise = now
}

// seed fills the events window from the ring: what was let through over the
// last Window, each slot at its end (a little later than it was sent, so
// it is held a little longer); under mu.
func (l *Limiter) seed(now time.Time) {
	cur := now.UnixNano() / int64(slot)
	n := int64(Window / slot)
	for k := cur - n + 1; k <= cur; k++ {
		s := l.ring[int(k%int64(slots)+int64(slots))%slots]
		if s.idx != k || s.sent == 0 {
			continue
		}
		at := time.Unix(0, (k+1)*int64(slot))
		if at.After(now) {
			at = now
		}
		l.b[0].e = append(l.b[0].e, entry{n: s.sent, sent: at, until: at.Add(l.b[0].span)})
		l.b[0].sum += s.sent
	}
}

// floor is the lowest events ceiling adaptation sets: FloorEPS, or the
// configured one when that is lower still.
func (l *Limiter) floor() float64 {
	return min(FloorEPS, l.cfg[0])
}

func (l *Limiter) raiseLocked(now time.Time) {
	dt := now.Sub(l.lastRaise)
	l.lastRaise = now
	if dt <= 0 || now.Sub(l.lastHeld) > bindingIn {
		return
	}
	dt = min(dt, time.Second)
	if r := l.b[0].rate; !math.IsInf(r, 1) && r < l.cfg[0] {
		l.b[0].set(min(r+l.step*dt.Seconds(), l.cfg[0]), now)
	}
}

// Stats returns a snapshot.
func (l *Limiter) Stats() Stats {
	if l == nil {
		return Stats{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fin := func(v float64) float64 {
		if math.IsInf(v, 1) {
			return 0
		}
		return v
	}
	return Stats{
		EPS: fin(l.b[0].rate), RPS: fin(l.b[1].rate),
		ConfiguredEPS: fin(l.cfg[0]), ConfiguredRPS: fin(l.cfg[1]),
		HeldBack: l.held, Pushbacks: l.pushbacks, Cuts: l.cuts,
		Sent: l.sent, Requests: l.requests, Taken: l.taken,
	}
}

// window is an exact sliding-window limit over the requests of the last
// span. A request counts from when it was let through until a span after
// it reached the server. Its arrival is not seen, only that it came before
// the answer: so it counts while in flight and for a span after its
// answer. Requests delayed on their way (a new connection, a busy server)
// thus still count when they land next to later ones, and the server never
// sees more than the ceiling in any span, whatever the delays; the price
// is the round trip, a request holding its place for span + RTT. The rate
// may change at any time; what was sent stays counted.
type window struct {
	rate, capacity float64 // capacity = rate·span; Inf = none
	span           time.Duration
	e              []entry
	sum            float64
}

type entry struct {
	id    uint64
	n     float64
	sent  time.Time
	until time.Time // zero while in flight
}

// maxInFlight bounds how long an unanswered request counts (a caller that
// never reports it must not block the window for ever).
const maxInFlight = time.Minute

// set changes the rate: the span is Window, or one 1/rate for a rate
// below one per span.
func (w *window) set(rate float64, now time.Time) {
	w.rate = rate
	if math.IsInf(rate, 1) {
		w.span, w.capacity = Window, rate
		return
	}
	w.span = max(Window, time.Duration(math.Ceil(float64(time.Second)/rate)))
	w.capacity = rate * w.span.Seconds()
	w.trim(now)
}

// expiry is when e stops counting.
func (e *entry) expiry() time.Time {
	if e.until.IsZero() {
		return e.sent.Add(maxInFlight)
	}
	return e.until
}

// trim forgets the requests that stopped counting by now.
func (w *window) trim(now time.Time) {
	k := 0
	for _, e := range w.e {
		if e.expiry().After(now) {
			w.e[k] = e
			k++
		} else {
			w.sum -= e.n
		}
	}
	clear(w.e[k:])
	w.e = w.e[:k]
	if k == 0 {
		w.sum = 0
	}
}

// delay is how long from now until need more fit in the window (a need
// above the capacity waits for an empty window), or MaxNap when that
// depends on requests still in flight.
func (w *window) delay(now time.Time, need float64) time.Duration {
	if math.IsInf(w.rate, 1) {
		return 0
	}
	w.trim(now)
	need = min(need, w.capacity)
	const eps = 1e-9
	if w.sum+need <= w.capacity+eps {
		return 0
	}
	// Free what leaves first until need fits.
	ends := make([]entry, len(w.e))
	copy(ends, w.e)
	slices.SortFunc(ends, func(a, b entry) int { return a.expiry().Compare(b.expiry()) })
	left := w.sum
	for _, e := range ends {
		if e.until.IsZero() {
			return MaxNap / 10 // in flight: look again soon
		}
		left -= e.n
		if left+need <= w.capacity+eps {
			return max(e.until.Sub(now), time.Nanosecond)
		}
	}
	return MaxNap
}

func (w *window) add(id uint64, now time.Time, n float64) {
	if math.IsInf(w.rate, 1) {
		return
	}
	w.e = append(w.e, entry{id: id, n: n, sent: now})
	w.sum += n
}

// answered sets when request id stops counting: a span after its answer
// at now.
func (w *window) answered(id uint64, now time.Time) {
	for i := range w.e {
		if e := &w.e[i]; e.id == id {
			e.until = now.Add(w.span)
			return
		}
	}
}
