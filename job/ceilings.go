package job

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/amplitude"
	"github.com/backfillhq/backfill/ceiling"
)

// Ceilings are the project-wide ceilings of a run, one per route (indexed by
// backfill.Route).
type Ceilings [2]*ceiling.Limiter

// shareOf is one shard's share of a project-wide ceiling: the shards of a
// job send to the same project at once, so each takes 1/COUNT. 0 (none)
// stays 0.
func shareOf(rate float64, shards int) float64 {
	if shards <= 1 {
		return rate
	}
	return rate / float64(shards)
}

// newCeilings builds the run's ceilings from --max-eps and --max-rps (this
// shard's share of them), one limiter per route: each route gets the whole
// ceiling, and they never send at once (the tail goes after /batch). With
// no ceiling set they are unlimited until Amplitude pushes back.
func newCeilings(c *Config, shards int) (Ceilings, error) {
	var out Ceilings
	for route := range out {
		l, err := ceiling.New(ceiling.Options{
			EPS:       shareOf(c.MaxEPS, shards),
			RPS:       shareOf(c.MaxRPS, shards),
			MaxEvents: c.batchSize(),
		})
		if err != nil {
			return out, fmt.Errorf("%w: %v", ErrUsage, err)
		}
		out[route] = l
	}
	return out, nil
}

func (c *Config) batchSize() int {
	if c.BatchSize <= 0 || c.BatchSize > amplitude.MaxEvents {
		return amplitude.MaxEvents
	}
	return c.BatchSize
}

// CeilingBound is the least time a ceiling of eps events/s and rps
// requests/s (0 = none) allows for n events sent in requests of at most
// batch events: a window (1 s) of them goes at once, the rest at the
// ceiling. Requests carry at most a tenth of the events ceiling
// (ceiling.Pieces), which is what the requests ceiling then counts.
func CeilingBound(n int64, eps, rps float64, batch int) time.Duration {
	if n <= 0 {
		return 0
	}
	if batch <= 0 {
		batch = amplitude.MaxEvents
	}
	perReq := float64(batch)
	var secs float64
	if eps > 0 {
		perReq = min(perReq, max(math.Floor(eps*ceiling.Window.Seconds()/ceiling.Pieces), 1))
		secs = float64(n)/eps - ceiling.Window.Seconds()
	}
	if rps > 0 {
		reqs := math.Ceil(float64(n) / perReq)
		secs = max(secs, reqs/rps-ceiling.Window.Seconds())
	}
	if secs <= 0 {
		return 0
	}
	return time.Duration(secs * float64(time.Second)).Round(time.Millisecond)
}

// ceilingBound is CeilingBound for this job's (shard's) ceilings: /batch
// events and then /2/httpapi events, one after the other.
func (c *Config) ceilingBound(byRoute map[backfill.Route]int64, shards int) time.Duration {
	eps, rps := shareOf(c.MaxEPS, shards), shareOf(c.MaxRPS, shards)
	return CeilingBound(byRoute[backfill.RouteBatch], eps, rps, c.batchSize()) +
		CeilingBound(byRoute[backfill.RouteHTTP], eps, rps, c.batchSize())
}

// CeilingReport is one route's project ceiling in the report.
type CeilingReport struct {
	// MaxEPS and MaxRPS are this run's configured ceilings (the shard's
	// share of --max-eps and --max-rps); 0 means none.
	MaxEPS float64 `json:"max_eps"`
	MaxRPS float64 `json:"max_rps"`
	// EPS is the events ceiling in force at the end: MaxEPS, or lower
	// after project-level pushback (0: none was ever needed).
	EPS float64 `json:"eps"`
	// HeldBackSeconds is how long the ceiling held requests back.
	HeldBackSeconds float64 `json:"held_back_seconds"`
	// Pushbacks counts project-level pushback (429s naming no id, 503,
	// 504, timeouts) and Cuts the times it lowered the ceiling.
	Pushbacks int64 `json:"pushbacks"`
	Cuts      int64 `json:"cuts"`
}

func ceilingReport(l *ceiling.Limiter) CeilingReport {
	st := l.Stats()
	return CeilingReport{
		MaxEPS: st.ConfiguredEPS, MaxRPS: st.ConfiguredRPS, EPS: st.EPS,
		HeldBackSeconds: st.HeldBack.Seconds(), Pushbacks: st.Pushbacks, Cuts: st.Cuts,
	}
}

// addCeilings adds this run's project ceilings to the report: achieved
// rates, time held back, each route's ceiling, and the ceiling's share of
// the lower bound.
func (r *Report) addCeilings(c *Config, cs Ceilings, shards int) {
	if r.DurationSeconds > 0 {
		r.AchievedEPS = float64(r.Run.EventsAccepted) / r.DurationSeconds
		r.AchievedRPS = float64(r.Run.Requests) / r.DurationSeconds
	}
	r.Ceilings = map[string]CeilingReport{}
	for route, l := range cs {
		cr := ceilingReport(l)
		r.HeldBackSeconds += cr.HeldBackSeconds
		r.Run.ProjectPushbacks += cr.Pushbacks
		if cr.MaxEPS > 0 || cr.MaxRPS > 0 || cr.Pushbacks > 0 || route == int(backfill.RouteBatch) {
			r.Ceilings[backfill.Route(route).String()] = cr
		}
	}
	if b := CeilingBound(r.Run.EventsAccepted, shareOf(c.MaxEPS, shards), shareOf(c.MaxRPS, shards), c.batchSize()).Seconds(); b > r.LowerBoundSeconds {
		r.LowerBoundSeconds = b
	}
}

// writeCeilings prints the summary's project line.
func (r *Report) writeCeilings(w io.Writer) {
	if len(r.Ceilings) == 0 {
		return
	}
	fmt.Fprintf(w, "  project  achieved %.0f events/s, %.1f requests/s; held back %s by project ceilings",
		r.AchievedEPS, r.AchievedRPS, time.Duration(r.HeldBackSeconds*float64(time.Second)).Round(time.Millisecond))
	for _, route := range []string{backfill.RouteBatch.String(), backfill.RouteHTTP.String()} {
		cr, ok := r.Ceilings[route]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "; %s ceiling %s", route, rateText(cr.EPS, "events/s"))
		if cr.MaxRPS > 0 {
			fmt.Fprintf(w, ", %s", rateText(cr.MaxRPS, "requests/s"))
		}
		if cr.Cuts > 0 {
			fmt.Fprintf(w, " (lowered %d times after %d project pushbacks)", cr.Cuts, cr.Pushbacks)
		}
	}
	fmt.Fprintln(w)
}

// ceilingWhy names the configured ceilings behind the lower bound.
func (r *Report) ceilingWhy() string {
	cr, ok := r.Ceilings[backfill.RouteBatch.String()]
	if !ok || cr.MaxEPS <= 0 && cr.MaxRPS <= 0 {
		return ""
	}
	return fmt.Sprintf("; project ceiling %s, %s", rateText(cr.MaxEPS, "events/s"), rateText(cr.MaxRPS, "requests/s"))
}

func rateText(v float64, unit string) string {
	if v <= 0 {
		return "none"
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}
