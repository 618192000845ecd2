package pipeline

import (
	"context"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/chunker"
)

// Journal makes acknowledgements durable between checkpoint saves (see
// checkpoint.Journal). A lane records a request with Sent and waits for it
// to be durable before sending it (which also makes its previous request's
// Acked durable), and records the accepted events with Acked once it
// settled; so after a kill at most the requests in flight are sent again.
type Journal interface {
	Sent(lane int, evs []backfill.Event)
	Wait(ctx context.Context) error
	Acked(lane int, accepted []int)
	// SetRecent gives the journal the budgets' recent sends to record.
	SetRecent(func([]checkpoint.IDSends) []checkpoint.IDSends)
}

// Resume is what a resumed run knows of the pacing budgets the killed run
// had spent (from the checkpoint and its journal).
type Resume struct {
	// Recent are the recent sends of the ids the budgets tracked exactly.
	Recent []checkpoint.IDSends
	// Active is the last moment the earlier run was seen sending (zero
	// for a fresh job): until it leaves the window, ids not listed in
	// Recent are assumed to have spent up to half their budget.
	Active time.Time
}

var routeNames = [2]string{backfill.RouteBatch: "batch", backfill.RouteHTTP: "http"}

var kindNames = [2]string{chunker.Device: "device", chunker.User: "user"}

// coldKind marks the entry of Resume.Recent that carries a route's cold
// debt (chunker.Budget.ColdNext) as one (unix second, events) step; the
// second is chunker.InFlight when the route had requests in flight, whose
// cold ids the server may count until the run ended.
const coldKind = "cold"

// seedBudgets seeds the route budgets with what an earlier run spent and
// hands the journal a snapshot function of them.
func (r *run) seedBudgets(budgets [2]*chunker.Budget) {
	now := r.cfg.Now()
	var cold [2]bool
	for _, s := range r.deps.Resume.Recent {
		if s.Kind == coldKind {
			for i, n := range routeNames {
				if n == s.Route && len(s.Sends) == 1 {
					active := time.Unix(s.Sends[0][0], 0)
					if s.Sends[0][0] == chunker.InFlight {
						// Requests were in flight: they may have
						// reached the server until the run ended.
						active = now
					}
					budgets[i].SeedCold(int(s.Sends[0][1]), active, now)
					cold[i] = true
				}
			}
			continue
		}
		route, kind := -1, -1
		for i, n := range routeNames {
			if n == s.Route {
				route = i
			}
		}
		for i, n := range kindNames {
			if n == s.Kind {
				kind = i
			}
		}
		if route < 0 || kind < 0 {
			continue
		}
		budgets[route].Seed(chunker.Kind(kind), s.ID, s.Sends, now)
	}
	for i, b := range budgets {
		if !cold[i] { // a checkpoint without the cold debt: assume a fresh run's
			b.SeedCold(b.FreshDebt(), r.deps.Resume.Active, now)
		}
	}
	if r.deps.Journal == nil {
		return
	}
	// Called by the journal's writer and by saves, concurrently.
	r.deps.Journal.SetRecent(func(dst []checkpoint.IDSends) []checkpoint.IDSends {
		now := r.cfg.Now()
		var spent []chunker.Spent
		for route, b := range budgets {
			spent = b.Recent(spent[:0], now)
			for _, s := range spent {
				dst = append(dst, checkpoint.IDSends{Route: routeNames[route], Kind: kindNames[s.Kind], ID: s.ID, Sends: s.Steps})
			}
			if d := b.ColdNext(now); d > 0 {
				sec := now.Unix()
				if b.Flying() > 0 {
					sec = chunker.InFlight
				}
				dst = append(dst, checkpoint.IDSends{Route: routeNames[route], Kind: coldKind, Sends: [][2]int64{{sec, int64(d)}}})
			}
		}
		return dst
	})
}

// journalSent records a request and waits until it is durable; lane is the
// lane's number across routes.
func (r *run) journalSent(ctx context.Context, lane int, evs []backfill.Event) error {
	if r.deps.Journal == nil {
		return nil
	}
	r.deps.Journal.Sent(lane, evs)
	return r.deps.Journal.Wait(ctx)
}

// journalAcked records which events of the lane's request were accepted.
func (r *run) journalAcked(lane int, accepted []int) {
	if r.deps.Journal != nil {
		r.deps.Journal.Acked(lane, accepted)
	}
}
