package chunker

import (
	"time"

	"github.com/backfillhq/backfill"
)

// Batch is the result of Next.
type Batch struct {
	// Events to send now, in per-device order. Empty when nothing can go.
	Events []backfill.Event
	// Wait is how long until something queued may be sendable, when Events
	// is empty and the lane is not empty.
	Wait time.Duration
	// Queued is how many events remain in the lane after this batch.
	Queued int
	// Closed reports that Close was called.
	Closed bool
	// Parked reports that Events is empty because every event that could
	// go next belongs to an id held back for Amplitude's daily quota (by
	// Budget.Park or the daily budget): waiting is pointless within the
	// hour, so a caller may leave them for a later run.
	Parked bool
}

// Next packs the next request: events from devices and users that still have
// budget, at most MaxEvents and MaxBytes, round-robin over devices so cold
// devices flow while hot ones are paced. It spends the budget of what it
// returns. It never blocks.
//
// The request of the previous Next has ended by the time Next is called
// again (a lane has one request in flight): if Done did not say when, its
// spends stay at the second they were taken.
func (l *Lane) Next(now time.Time) Batch {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fl.on {
		l.budget.mu.Lock()
		l.budget.land(&l.fl, now.Unix(), false)
		l.budget.mu.Unlock()
	}
	if l.queued+l.spilled == 0 {
		return Batch{Closed: l.closed}
	}
	if !l.closed && l.queued+l.spilled < l.opts.MaxEvents {
		if age := now.Sub(l.oldest); age < l.opts.Linger {
			return Batch{Wait: l.opts.Linger - age, Queued: l.queued + l.spilled}
		}
	}
	if now.Before(l.nextSend) {
		return Batch{Wait: l.nextSend.Sub(now), Queued: l.queued + l.spilled, Closed: l.closed}
	}

	b := l.budget
	b.mu.Lock()
	defer b.mu.Unlock()
	sec := now.Unix()
	b.refly(sec)
	b.gc(sec)
	if d := l.daily; d != nil && d != b {
		// Lock order: the pace budget, then the daily one.
		d.mu.Lock()
		defer d.mu.Unlock()
		d.gc(sec)
	}

	var (
		out   []backfill.Event
		size  = l.opts.Overhead
		wait  time.Duration
		park  = true // every blocked queue waits for a parked id
		full  bool
		visit = len(l.active)
		// perUser counts the request's events by user hash when MaxPerID
		// is set (a collision can only make the cap stricter).
		perUser map[uint64]int
	)
	if l.opts.MaxPerID > 0 {
		perUser = make(map[uint64]int)
	}
	if l.rr >= len(l.active) {
		l.rr = 0
	}
	for i := 0; i < visit && !full && len(l.active) > 0; i++ {
		if l.rr >= len(l.active) {
			l.rr = 0
		}
		q := l.active[l.rr]
		taken := 0 // events of q's key in this request
		for q.len() > 0 || q.sp != nil {
			if q.len() == 0 {
				l.refill(q)
				if q.len() == 0 {
					break
				}
			}
			it := &q.evs[q.head]
			ev := &it.ev
			n := len(ev.Raw) + 1
			if len(out) > 0 && size+n > l.opts.MaxBytes {
				full = true
				break
			}
			if perUser != nil && (taken >= l.opts.MaxPerID || (it.uh != 0 && perUser[it.uh] >= l.opts.MaxPerID)) {
				break // the rest of this id goes in a later request
			}
			if w, parked := l.admit(ev, q.h, it.uh, now, sec); w > 0 {
				if wait == 0 || w < wait {
					wait = w
				}
				park = park && parked
				q.blocked = true
				break
			}
			q.blocked = false
			if out == nil {
				if out, l.spare = l.spare, nil; cap(out) == 0 {
					out = make([]backfill.Event, 0, min(l.queued, l.opts.MaxEvents))
				}
			}
			out = append(out, *ev)
			var dh uint64
			if ev.DeviceID != "" {
				dh = q.h
			}
			l.fl.hs = append(l.fl.hs, [2]uint64{dh, it.uh})
			size += n
			taken++
			if perUser != nil && it.uh != 0 {
				perUser[it.uh]++
			}
			// Uncount the bytes before the slot is cleared: ev points into it.
			l.queuedBytes -= len(ev.Raw)
			q.evs[q.head] = item{}
			q.head++
			l.queued--
			if len(out) == l.opts.MaxEvents {
				full = true
				break
			}
		}
		if q.len() == 0 && q.sp == nil {
			l.remove(q)
			// l.rr now holds the queue swapped into q's place.
		} else {
			if q.head > 64 && q.head > len(q.evs)/2 {
				q.evs = append(q.evs[:0], q.evs[q.head:]...)
				q.head = 0
			}
			l.rr++
		}
	}
	if len(out) > 0 {
		b.begin(&l.fl, out, sec)
		l.fl.hs = l.fl.hs[:0]
		if len(out) < l.opts.MaxEvents && !full {
			l.nextSend = now.Add(l.opts.Linger)
		}
		if l.queued > 0 {
			l.oldest = now
		}
		signal(l.space)
		return Batch{Events: out, Queued: l.queued + l.spilled, Closed: l.closed}
	}
	parked := wait > 0 && park
	if wait <= 0 {
		wait = time.Second
	}
	return Batch{Wait: wait, Queued: l.queued + l.spilled, Closed: l.closed, Parked: parked}
}

// Recycle gives back the Events of a Batch once the caller is done with
// them (sent and settled, nothing of the slice kept), so that a later Next
// reuses the slice instead of allocating one per request.
func (l *Lane) Recycle(evs []backfill.Event) {
	if cap(evs) == 0 {
		return
	}
	clear(evs) // drop the references to the events' bytes
	l.mu.Lock()
	if cap(evs) > cap(l.spare) {
		l.spare = evs[:0]
	}
	l.mu.Unlock()
}

// admit spends the budget of ev's device and user (and the daily budget,
// if any) and returns 0, or spends nothing and returns how long until ev
// may go (a 429 pause or an exhausted budget) and whether that is because
// of the daily quota (a park or the daily budget). dh and uh are the hashes of
// ev's device and user ids (dh is ignored when it has no device). Called
// with the budget locks held.
func (l *Lane) admit(ev *backfill.Event, dh, uh uint64, now time.Time, sec int64) (time.Duration, bool) {
	ids := [...]struct {
		k  Kind
		id string
		h  uint64
	}{{Device, ev.DeviceID, dh}, {User, ev.UserID, uh}}
	var (
		wait time.Duration
		park bool
	)
	for _, x := range ids {
		if x.id == "" {
			continue
		}
		if until, parked := l.budget.pausedUntil(x.k, x.id, now); !until.IsZero() && until.Sub(now) > wait {
			wait, park = until.Sub(now), parked
		}
	}
	if wait > 0 {
		return wait, park
	}
	budgets := [...]*Budget{l.budget, l.daily}
	for bi, b := range budgets {
		if b == nil || b.limit == 0 {
			continue
		}
		for xi := range ids {
			x := &ids[xi]
			if x.id == "" || b.take(x.k, x.id, x.h, sec, 1) == 1 {
				continue
			}
			wait = max(b.nextFree(x.k, x.id, sec), time.Millisecond)
			if b == l.daily {
				// A daily budget refills by the hour: park, and look
				// again in a minute at the soonest.
				wait = max(wait, time.Minute)
			}
			// Give back what this event already took.
			for pi := 0; pi <= bi; pi++ {
				pb := budgets[pi]
				if pb == nil || pb.limit == 0 {
					continue
				}
				for yi := range ids {
					if y := &ids[yi]; y.id != "" && (pi < bi || yi < xi) {
						pb.give(y.k, y.id, y.h, sec, 1)
					}
				}
			}
			return wait, b == l.daily
		}
	}
	return 0, false
}
