package job

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/hotids"
	"github.com/backfillhq/backfill/internal/escape"
	"github.com/backfillhq/backfill/mapping"
	"github.com/backfillhq/backfill/reader"
)

// Analysis is what `backfill plan` and `backfill validate` learn by reading
// every record without sending anything. Memory stays bounded: the summary
// estimates distinct ids and hotids keeps only the heavy hitters.
type Analysis struct {
	Plan     *PlanResult
	Summary  *mapping.Summary
	HotDevs  []hotids.IDCount
	HotUsers []hotids.IDCount
	Failed   []Sample // objects that could not be read
	ByRoute  map[backfill.Route]int64
	// LowerBound is the least time Amplitude's limits allow: the larger of
	// IDBound and the /batch share of CeilingBound, plus the /2/httpapi
	// share of CeilingBound (the tail is sent after /batch).
	LowerBound time.Duration
	// IDBound is the per-id part: the hottest id can send EPS·30 events per
	// 30 s window, so N events need (⌈N/(EPS·30)⌉−1)·30 s at least.
	IDBound   time.Duration
	HottestID string
	EPS       int
	// CeilingBound is the project ceiling's part: every event at MaxEPS
	// and every request at MaxRPS (this shard's share; see CeilingBound).
	CeilingBound   time.Duration
	MaxEPS, MaxRPS float64
	// Other counts the events of a sharded dry run that other shards own.
	Other int64
	// Mapper holds the mapper's counters after the analysis (ids stripped
	// as too short or blocked); MinIDLength is the effective minimum.
	Mapper      mapping.Stats
	MinIDLength int
}

// Sample is one problem with its location.
type Sample struct {
	Where  string
	Reason string
}

// LowerBound returns the least time in which n events of one id can be sent
// at eps events/s averaged over Amplitude's 30 s window.
func LowerBound(n int64, eps int) time.Duration {
	if eps <= 0 || n <= 0 {
		return 0
	}
	perWindow := int64(eps) * 30
	windows := (n + perWindow - 1) / perWindow
	return time.Duration(windows-1) * 30 * time.Second
}

// Analyze reads, maps and validates every record of the job's sources.
func Analyze(ctx context.Context, cfg Config) (*Analysis, error) {
	if err := cfg.validateNoSend(); err != nil {
		return nil, err
	}
	st, err := cfg.openStages()
	if err != nil {
		return nil, err
	}
	defer st.rd.Close()
	mapper, rd := st.mapper, st.rd
	plan, err := previewPlan(ctx, rd, &cfg, st.shards)
	if err != nil {
		return nil, err
	}
	a := &Analysis{Plan: plan, Summary: &mapping.Summary{}, ByRoute: map[backfill.Route]int64{}, EPS: cfg.pace().eps}
	// A shard reads everything and counts what it owns (see Run).
	owns := func(ev *backfill.Event, err error, pos backfill.Position) bool {
		if st.shards <= 1 {
			return true
		}
		if err != nil {
			return backfill.ShardOfPosition(pos, st.shards) == st.shard
		}
		return backfill.ShardOf(ev.Key(), st.shards) == st.shard
	}
	devs, users := hotids.New(0), hotids.New(0)
	ls := plan.Lister(ctx, rd)
	for {
		obj, err := ls.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		dec, err := obj.Open(ctx, backfill.Position{})
		if err != nil {
			a.Failed = append(a.Failed, Sample{obj.URL, err.Error()})
			continue
		}
		for {
			rec, err := dec.Next(ctx)
			if err == io.EOF {
				break
			}
			var recErr *backfill.RecordError
			if errors.As(err, &recErr) {
				if owns(nil, err, recErr.Pos) {
					a.Summary.Add(backfill.Event{}, err)
				}
				continue
			}
			if err != nil {
				a.Failed = append(a.Failed, Sample{obj.URL, err.Error()})
				break
			}
			ev, err := mapper.Map(rec)
			if !owns(&ev, err, rec.Pos) {
				a.Other++
				continue
			}
			a.Summary.Add(ev, err)
			if err != nil {
				continue
			}
			a.ByRoute[obj.Route]++
			devs.Add(ev.DeviceID)
			users.Add(ev.UserID)
		}
		dec.Close()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	a.HotDevs, a.HotUsers = devs.Top(5), users.Top(5)
	var hottest int64
	for _, top := range [][]hotids.IDCount{a.HotDevs, a.HotUsers} {
		if len(top) > 0 && top[0].Count > hottest {
			hottest, a.HottestID = top[0].Count, top[0].ID
		}
	}
	a.IDBound = LowerBound(hottest, a.EPS)
	a.MaxEPS, a.MaxRPS = shareOf(cfg.MaxEPS, st.shards), shareOf(cfg.MaxRPS, st.shards)
	batchBound := CeilingBound(a.ByRoute[backfill.RouteBatch], a.MaxEPS, a.MaxRPS, cfg.batchSize())
	a.CeilingBound = cfg.ceilingBound(a.ByRoute, st.shards)
	a.LowerBound = max(a.IDBound, batchBound) + a.CeilingBound - batchBound
	a.Mapper = mapper.Stats()
	a.MinIDLength = cmp.Or(cfg.MinIDLength, mapping.DefaultMinIDLength)
	return a, nil
}

// Warnings returns what the user should know before sending although no
// record is rejected for it: ids that the repair policy removes (too short
// or blocked), and the records rejected because of such ids, each with the
// count, its share and the flag or fix to use.
func (a *Analysis) Warnings() []string {
	_, mapped, _, _ := a.Summary.Counts()
	shortRej, blockedRej := a.Summary.IDRejections()
	share := func(n, of int64) string {
		if of <= 0 {
			return ""
		}
		return fmt.Sprintf(" (%.1f%% of %d valid events)", 100*float64(n)/float64(of), of)
	}
	var out []string
	if shortRej > 0 {
		out = append(out, fmt.Sprintf("%d records would be rejected because a user_id or device_id is shorter than %d characters (Amplitude answers 400 for them, even next to a valid other id)%s; "+
			"if they are real ids (database keys such as \"7\"), run with --min-id-length N (e.g. --min-id-length 1; sent as options.min_id_length)", shortRej, a.MinIDLength, share(shortRej, mapped)))
	}
	if n := a.Mapper.BlockedIDs; n > 0 {
		out = append(out, fmt.Sprintf("%d user_id/device_id values are on Amplitude's blocked list (\"anonymous\", \"null\", \"0\", ...)%s: "+
			"they are removed before sending, as Amplitude rejects them; no flag changes that: map another id with --mapping", n, share(n, mapped)))
	}
	if blockedRej > 0 {
		out = append(out, fmt.Sprintf("%d records would be rejected because their only id is on Amplitude's blocked list; "+
			"map another id with --mapping", blockedRej))
	}
	return out
}

// Invalid returns the number of records that would be dead-lettered.
func (a *Analysis) Invalid() int64 {
	_, _, filtered, rejected := a.Summary.Counts()
	return filtered + rejected
}

// WriteText prints the analysis for humans. validate selects the
// validation-oriented layout.
func (a *Analysis) WriteText(w io.Writer, validate bool) {
	p := a.Plan
	fmt.Fprintf(w, "objects:   %d (%s)\n", p.Objects, humanBytes(p.Bytes))
	if a.Other > 0 {
		fmt.Fprintf(w, "shard:     reads every object; %d events belong to other shards (counted below: only this shard's)\n", a.Other)
	}
	a.Summary.WriteText(w)
	for _, f := range a.Failed {
		fmt.Fprintf(w, "unreadable: %s: %s\n", escape.Line(f.Where), escape.Line(f.Reason))
	}
	for _, warn := range a.Warnings() {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if validate {
		return
	}
	if len(a.HotDevs) > 0 || len(a.HotUsers) > 0 {
		fmt.Fprintln(w, "hottest ids:")
		for _, c := range a.HotDevs {
			fmt.Fprintf(w, "  device %-40s %d events\n", escape.Line(c.ID), c.Count)
		}
		for _, c := range a.HotUsers {
			fmt.Fprintf(w, "  user   %-40s %d events\n", escape.Line(c.ID), c.Count)
		}
	}
	fmt.Fprintf(w, "routes:    %d events via /batch, %d via /2/httpapi\n", a.ByRoute[backfill.RouteBatch], a.ByRoute[backfill.RouteHTTP])
	fmt.Fprintf(w, "lower bound on the finishing time: %s", a.LowerBound)
	var why []string
	if a.HottestID != "" {
		why = append(why, fmt.Sprintf("the hottest id, %s, at %d events/s per id over 30 s windows: %s", escape.Line(a.HottestID), a.EPS, a.IDBound))
	}
	if a.MaxEPS > 0 || a.MaxRPS > 0 {
		why = append(why, fmt.Sprintf("the project ceiling of %s and %s: %s", rateText(a.MaxEPS, "events/s"), rateText(a.MaxRPS, "requests/s"), a.CeilingBound))
	}
	if len(why) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(why, "; "))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "expected time: about the lower bound when the hottest id dominates; otherwise reading and upload speed decide (see BENCHMARKS.md)")
}

// WritePlan prints the objects in processing order with their routes.
func (p *PlanResult) WritePlan(ctx context.Context, rd *reader.Reader, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tROUTE\tSIZE\tOBJECT")
	ls := p.Lister(ctx, rd)
	i := 0
	for {
		obj, err := ls.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		i++
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", i, obj.Route, humanBytes(obj.Size), escape.Line(obj.URL))
	}
	tw.Flush()
	p.RoutePlan.WriteText(w, p.Recorded)
	return nil
}

// WriteText describes the plan: its generation, the tail and the rule that
// chose it. recorded says whether it was read from the checkpoint location.
func (rp *RoutePlan) WriteText(w io.Writer, recorded bool) {
	origin := "made from the listing now; the first run records it in the checkpoint location, and every shard follows it"
	if recorded {
		origin = fmt.Sprintf("recorded in the checkpoint location at %s; every shard and resume follows it", rp.Created.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "route plan %d (%s): %d objects (%s) in %d partitions\n", rp.Generation, origin, rp.Objects, humanBytes(rp.Bytes), rp.Partitions)
	switch rp.Route {
	case RouteHTTP:
		fmt.Fprintln(w, "  --route http: every event goes through /2/httpapi")
		return
	case RouteBatch:
		fmt.Fprintln(w, "  --route batch: every event goes through /batch")
		return
	}
	fmt.Fprintf(w, "  tail rule: trailing partitions each at most %g × the median partition before them (%s), at most %d events together, no id over %d events\n",
		rp.TailRatio, humanBytes(rp.MedianBytes), rp.TailEvents, rp.PerIDEvents)
	if len(rp.Tail) == 0 {
		fmt.Fprintln(w, "  tail: none; everything goes through /batch")
	} else {
		fmt.Fprintf(w, "  tail: %d trailing partitions (%d events) go through /2/httpapi after everything else:\n", len(rp.Tail), rp.TailCount)
		for _, part := range rp.Tail {
			fmt.Fprintf(w, "    %s (%d objects, %s, %d events)\n", escape.Line(part.Name), len(part.Objects), humanBytes(part.Bytes), part.Events)
		}
	}
	if rp.Stop != "" {
		fmt.Fprintf(w, "  the tail stops there: %s\n", rp.Stop)
	}
}

// DryRun lists the objects of cfg in processing order with their routes,
// sending nothing.
func DryRun(ctx context.Context, cfg Config, w io.Writer) error {
	if err := cfg.validateNoSend(); err != nil {
		return err
	}
	st, err := cfg.openStages()
	if err != nil {
		return err
	}
	defer st.rd.Close()
	p, err := previewPlan(ctx, st.rd, &cfg, st.shards)
	if err != nil {
		return err
	}
	return p.WritePlan(ctx, st.rd, w)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
