package chunker

import (
	"cmp"
	"slices"
	"time"

	"github.com/backfillhq/backfill"
)

// A flight is one lane's request between Next and Done. Next spends the
// budget at its own second, but the server counts the events when the
// request reaches it: after the checkpoint journal's commit, the network
// and any retries after a 5xx or a timeout (minutes with the default
// backoff). Spends stamped at Next's second would leave the budget's window
// that much too early, and a later request could then arrive within the
// server's window of the earlier one. So while a request is in flight its
// spends never leave the budget (refly stamps them again before they would),
// and Done stamps them at the second the request ended, the last moment the
// server could have counted them. The budget thus remembers every spend for
// a full window after the server counted it, whatever the commit latency
// and the retries. (The daily budget's 1 h steps are not restamped: no
// flight lasts an hour.)
type flight struct {
	on    bool
	sec   int64 // the second its spends are stamped at
	exact []flyRef
	cold  []coldRef
	hs    [][2]uint64 // device and user hash of each event, while Next packs
}

// flyRef is what a flight spent of one exactly tracked id.
type flyRef struct {
	st *steps
	n  int
}

// coldRef is what a flight spent of one id counted in the sketch.
type coldRef struct {
	k Kind
	h uint64
	n int
}

// InFlight is the second of a step in Spent.Steps that was in flight when
// Recent was taken: the server may count it any time until the run ends, so
// Seed stamps it at the resumed run's start.
const InFlight = 0

// reflyAge is the age at which refly stamps a flight's spends again: well
// before they would leave the exact window or the sketch's epochs (both at
// least b.window).
func (b *Budget) reflyAge() int64 { return b.window / 2 }

// begin registers f as in flight at sec with the events of out, whose
// device and user hashes are f.hs. b.mu must be held.
func (b *Budget) begin(f *flight, out []backfill.Event, sec int64) {
	f.on, f.sec = true, sec
	f.exact, f.cold = f.exact[:0], f.cold[:0]
	if b.limit == 0 {
		return
	}
	for i := range out {
		ev := &out[i]
		ids := [2]string{ev.DeviceID, ev.UserID}
		for k, id := range ids {
			if id == "" {
				continue
			}
			if st := b.ids[k][id]; st != nil {
				st.fly++
				if n := len(f.exact); n > 0 && f.exact[n-1].st == st {
					f.exact[n-1].n++
				} else {
					f.exact = append(f.exact, flyRef{st, 1})
				}
				continue
			}
			h := f.hs[i][k]
			if n := len(f.cold); n > 0 && f.cold[n-1].h == h && f.cold[n-1].k == Kind(k) {
				f.cold[n-1].n++
			} else {
				f.cold = append(f.cold, coldRef{Kind(k), h, 1})
			}
		}
	}
	if b.flights == nil {
		b.flights = make(map[*flight]struct{})
	}
	b.flights[f] = struct{}{}
}

// land ends flight f at second now; restamp tells whether its spends move
// to now (Done) or stay where they are (a flight that Next found not
// ended, as a caller that never calls Done has it). b.mu must be held.
func (b *Budget) land(f *flight, now int64, restamp bool) {
	if !f.on {
		return
	}
	if restamp {
		b.restamp(f, now)
	}
	for _, r := range f.exact {
		r.st.fly -= r.n
	}
	f.on = false
	clear(f.exact)
	f.exact, f.cold = f.exact[:0], f.cold[:0]
	delete(b.flights, f)
}

// refly stamps again, at now, the spends of every flight that has been in
// flight for reflyAge or more, before they could leave the window or the
// sketch. Every access that expires steps or rolls the sketch calls it
// first. b.mu must be held.
func (b *Budget) refly(now int64) {
	for f := range b.flights {
		if now-f.sec >= b.reflyAge() {
			b.restamp(f, now)
		}
	}
}

// promoteFlying hands the events of id (kind k, hash h) that flights
// counted in the sketch to st, the id's new exact steps: its estimate holds
// them at the promotion's second, and from now on they are restamped and
// reported in flight as exact spends. b.mu must be held.
func (b *Budget) promoteFlying(k Kind, h uint64, st *steps) {
	for f := range b.flights {
		for i := 0; i < len(f.cold); i++ {
			if c := f.cold[i]; c.k == k && c.h == h {
				st.fly += c.n
				f.exact = append(f.exact, flyRef{st, c.n})
				f.cold = slices.Delete(f.cold, i, i+1)
				i--
			}
		}
	}
}

// restamp moves f's spends from f.sec to now. b.mu must be held.
func (b *Budget) restamp(f *flight, now int64) {
	if now <= f.sec {
		return
	}
	from, to := f.sec-f.sec%b.step, now-now%b.step
	for _, r := range f.exact {
		r.st.move(from, to, r.n)
	}
	for _, c := range f.cold {
		if sk := b.sk[c.k]; sk != nil {
			sk.move(c.h, f.sec, now, c.n)
		}
	}
	f.sec = now
}

// move takes n events from step from (as much as it holds) and adds n at
// step to, a later one. Taking from another request's step is safe: the
// moved events stay counted at least as long.
func (st *steps) move(from, to int64, n int) {
	i, ok := slices.BinarySearchFunc(st.s, from, func(e step, t int64) int { return cmp.Compare(e.sec, t) })
	if ok {
		m := min(n, st.s[i].n)
		st.s[i].n -= m
		st.total -= m
	}
	j, ok := slices.BinarySearchFunc(st.s, to, func(e step, t int64) int { return cmp.Compare(e.sec, t) })
	if ok {
		st.s[j].n += n
	} else {
		st.s = slices.Insert(st.s, j, step{sec: to, n: n})
	}
	st.total += n
	st.last = max(st.last, to)
}

// move moves n events of h from the second from to the second to: out of
// from's epoch if the sketch still holds it (else they are gone already),
// into to's.
func (s *sketch) move(h uint64, from, to int64, n int) {
	if e := from / s.window; e == s.epoch || e == s.epoch-1 {
		p := e & 1
		for r := range sketchRows {
			c := &s.rows[r][slot(h, r)]
			c[p] = max(0, c[p]-int32(n))
		}
	}
	s.add(h, to, n)
}

// Done tells the lane that the request of its last Next has ended (answered,
// failed or given up) at now: the budget it spent counts from now on, when
// the server has counted it, not from when it was packed (see flight).
// Call it once per request, after the last attempt and before the next
// Next.
func (l *Lane) Done(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.budget
	b.mu.Lock()
	defer b.mu.Unlock()
	b.land(&l.fl, now.Unix(), true)
}

// Flying returns how many requests are in flight (between Next and Done).
func (b *Budget) Flying() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.flights)
}
