package chunker_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/chunker"
)

// arrival is one request reaching the server: when, and its events.
type arrival struct {
	at  time.Time
	evs []backfill.Event
}

// overWindow checks the arrivals the way the emulator's throttle does: an
// id's events counted in the 300 most recent 100 ms slots (29.9-30 s) at
// each arrival must not exceed limit. It returns the first overrun.
func overWindow(arrs []arrival, limit int) string {
	sort.SliceStable(arrs, func(i, j int) bool { return arrs[i].at.Before(arrs[j].at) })
	type hit struct {
		slot int64
		n    int
	}
	seen := map[string][]hit{}
	for _, a := range arrs {
		slot := a.at.UnixMilli() / 100
		per := map[string]int{}
		for _, e := range a.evs {
			if e.DeviceID != "" {
				per["device "+e.DeviceID]++
			}
			if e.UserID != "" {
				per["user "+e.UserID]++
			}
		}
		for id, n := range per {
			total := n
			for _, h := range seen[id] {
				if h.slot >= slot-299 {
					total += h.n
				}
			}
			if total > limit {
				return fmt.Sprintf("%s: %d events in the server's window at %s, limit %d", id, total, a.at.Sub(t0), limit)
			}
			seen[id] = append(seen[id], hit{slot, n})
		}
	}
	return ""
}

// simLane is one lane of the simulation: its request in flight, if any.
type simLane struct {
	l      *chunker.Lane
	busy   bool
	end    time.Time // when the request in flight ends (its answer)
	evs    []backfill.Event
	next   time.Time // when the lane looks again, when idle
	sent   int       // requests sent
	closed bool
}

// TestFlightWindow drives lanes on an injected clock, with each request
// taking its own time between Next's spend and the server (a slow journal
// commit, a 5xx retried after a backoff, a flight longer than a window) and
// optionally a kill and resume in between, and checks every id against the
// server's window at the moment each request arrived. A spend stamped at
// Next's second (no Done, or a resumed run seeding in-flight spends at
// their old second) lets a later request arrive within the window of a
// delayed one: every case fails that way without Lane.Done and the
// InFlight steps.
func TestFlightWindow(t *testing.T) {
	const eps = 10 // limit 300 per window
	type lane struct{ devs, users []string }
	for _, tt := range []struct {
		name  string
		lanes []lane
		n     int // events per lane
		// flight is how long lane's request k takes from Next to its
		// answer; the server counts it 10 ms before the answer.
		flight func(lane, k int) time.Duration
		kill   time.Duration // kill all lanes at t0+kill and resume (0: none)
	}{
		{
			name:  "slow-commit",
			lanes: []lane{{devs: []string{"hot"}}},
			n:     900,
			// The first commit takes 3 s (an object PUT on a starved
			// machine), the later ones nothing.
			flight: func(_, k int) time.Duration {
				if k == 0 {
					return 3*time.Second + 20*time.Millisecond
				}
				return 20 * time.Millisecond
			},
		},
		{
			name:  "5xx-retried",
			lanes: []lane{{devs: []string{"hot"}}},
			n:     900,
			// The first attempt is answered 503 and not counted; the
			// retry after a 4 s backoff is.
			flight: func(_, k int) time.Duration {
				if k%2 == 0 {
					return 4*time.Second + 40*time.Millisecond
				}
				return 20 * time.Millisecond
			},
		},
		{
			name: "longer-than-window",
			// Two lanes share a user: lane 0's request is retried for
			// 45 s while lane 1 would spend the user's budget again.
			lanes: []lane{{devs: []string{"d0"}, users: []string{"u"}}, {devs: []string{"d1"}, users: []string{"u"}}},
			n:     300,
			flight: func(lane, k int) time.Duration {
				if lane == 0 && k == 0 {
					return 45 * time.Second
				}
				return 20 * time.Millisecond
			},
		},
		{
			name:  "killed-after-slow-commit",
			lanes: []lane{{devs: []string{"hot"}}},
			n:     900,
			flight: func(_, k int) time.Duration {
				if k == 0 {
					return 10 * time.Second
				}
				return 20 * time.Millisecond
			},
			// Killed while the first request is in flight: it reaches
			// the server at the kill.
			kill: 3 * time.Second,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			budget := chunker.NewBudget(eps, 0)
			limit := budget.Limit()
			opts := chunker.Options{Linger: time.Millisecond, MaxQueued: 10000}
			var lanes []*simLane
			for i, ln := range tt.lanes {
				l := chunker.NewLane(budget, opts)
				for j := range tt.n {
					e := ev(ln.devs[j%len(ln.devs)], "", int64(i*tt.n+j), 10)
					if len(ln.users) > 0 {
						e.UserID = ln.users[j%len(ln.users)]
					}
					l.Push(e, t0)
				}
				l.Close()
				lanes = append(lanes, &simLane{l: l, next: t0})
			}
			var arrs []arrival
			now := t0
			killed := tt.kill == 0
			for step := 0; step < 100000; step++ {
				// The next thing to happen: a request ending or an
				// idle lane looking again.
				var who *simLane
				var at time.Time
				for _, s := range lanes {
					if s.closed {
						continue
					}
					w := s.next
					if s.busy {
						w = s.end
					}
					if who == nil || w.Before(at) {
						who, at = s, w
					}
				}
				if !killed && (who == nil || !at.Before(t0.Add(tt.kill))) {
					// Kill: what is in flight reaches the server now at
					// the latest; a new run resumes from Recent and
					// ColdNext half a second later, with the events not
					// yet sent.
					killed = true
					kill := t0.Add(tt.kill)
					recent, debt, flying := budget.Recent(nil, kill), budget.ColdNext(kill), budget.Flying()
					resume := kill.Add(500 * time.Millisecond)
					budget = chunker.NewBudget(eps, 0)
					for _, s := range recent {
						budget.Seed(s.Kind, s.ID, s.Steps, resume)
					}
					active := kill
					if flying > 0 {
						active = resume
					}
					budget.SeedCold(debt, active, resume)
					for i, s := range lanes {
						if s.busy {
							arrs = append(arrs, arrival{kill, s.evs})
						}
						l := chunker.NewLane(budget, opts)
						// What the killed lane had not sent: drained
						// from it far in the future (its budget is the
						// killed run's and is dropped).
						var rest []backfill.Event
						for far := t0.Add(24 * time.Hour); ; {
							b := s.l.Next(far)
							if len(b.Events) == 0 {
								if b.Queued == 0 {
									break
								}
								far = far.Add(b.Wait)
								continue
							}
							rest = append(rest, b.Events...)
						}
						for _, e := range rest {
							l.Push(e, resume)
						}
						l.Close()
						lanes[i] = &simLane{l: l, next: resume, sent: s.sent}
					}
					now = resume
					continue
				}
				if who == nil {
					break
				}
				now = at
				if who.busy {
					arrs = append(arrs, arrival{who.end.Add(-10 * time.Millisecond), who.evs})
					who.l.Done(now)
					who.busy, who.next = false, now
					continue
				}
				b := who.l.Next(now)
				if len(b.Events) > 0 {
					idx := 0
					for i, s := range lanes {
						if s == who {
							idx = i
						}
					}
					who.busy, who.evs = true, append([]backfill.Event(nil), b.Events...)
					who.end = now.Add(tt.flight(idx, who.sent))
					who.sent++
					continue
				}
				if b.Queued == 0 && b.Closed {
					who.closed = true
					continue
				}
				who.next = now.Add(max(b.Wait, time.Millisecond))
			}
			total := 0
			for _, a := range arrs {
				total += len(a.evs)
			}
			if want := tt.n * len(tt.lanes); total != want {
				t.Fatalf("%d events reached the server, want %d", total, want)
			}
			if msg := overWindow(arrs, limit); msg != "" {
				t.Error(msg)
			}
		})
	}
}
