package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/hotids"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/reader"
)

// Analysis is what `backfill plan` and `backfill validate` learn by reading
// every record without sending anything. Memory stays bounded: ids are
// counted with hotids.
type Analysis struct {
	Plan     *PlanResult
	Records  int64
	Valid    int64
	Invalid  int64
	Reasons  map[string]int64
	Samples  []Sample
	First    []string // the first mapped events, as sent
	MinTime  int64
	MaxTime  int64
	Devices  int64 // distinct, estimated
	Users    int64 // distinct, estimated
	HotDevs  []hotids.IDCount
	HotUsers []hotids.IDCount
	Failed   []Sample // objects that could not be read
	ByRoute  map[backfill.Route]int64
	// LowerBound is the least time Amplitude's per-id limits allow: the
	// hottest id can send EPS·30 events per 30 s window, so N events need
	// (⌈N/(EPS·30)⌉−1)·30 s at least.
	LowerBound time.Duration
	HottestID  string
	EPS        int
}

// Sample is one problem with its location.
type Sample struct {
	Where  string
	Reason string
}

const (
	maxSamples = 10
	maxReasons = 200
	maxFirst   = 3
)

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
	if cfg.APIKey == "" {
		cfg.APIKey = "unused" // nothing is sent
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mapper, err := newMapper(&cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	rd, err := reader.New(readerOptions(&cfg))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	defer rd.Close()
	si, sn, err := ParseShard(cfg.Shard)
	if err != nil {
		return nil, err
	}
	plan, err := Plan(ctx, rd, &cfg, si, sn)
	if err != nil {
		return nil, err
	}
	a := &Analysis{Plan: plan, Reasons: map[string]int64{}, MinTime: math.MaxInt64, ByRoute: map[backfill.Route]int64{}}
	a.EPS = cfg.EPS
	if a.EPS == 0 {
		a.EPS = 300
	}
	devs, users := hotids.New(0), hotids.New(0)
	reject := func(where, reason string) {
		a.Invalid++
		key := reason
		if i := strings.IndexAny(key, ":("); i > 0 && len(a.Reasons) >= maxReasons/2 {
			key = key[:i]
		}
		if _, ok := a.Reasons[key]; ok || len(a.Reasons) < maxReasons {
			a.Reasons[key]++
		} else {
			a.Reasons["(other reasons)"]++
		}
		if len(a.Samples) < maxSamples {
			a.Samples = append(a.Samples, Sample{where, reason})
		}
	}
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
				a.Records++
				reject(recErr.Pos.String(), recErr.Reason)
				continue
			}
			if err != nil {
				a.Failed = append(a.Failed, Sample{obj.URL, err.Error()})
				break
			}
			a.Records++
			ev, err := mapper.Map(rec)
			if err != nil {
				reason := err.Error()
				if errors.As(err, &recErr) {
					reason = recErr.Reason
				}
				reject(rec.Pos.String(), reason)
				continue
			}
			a.Valid++
			a.ByRoute[obj.Route]++
			devs.Add(ev.DeviceID)
			users.Add(ev.UserID)
			if ev.Time != 0 {
				a.MinTime = min(a.MinTime, ev.Time)
				a.MaxTime = max(a.MaxTime, ev.Time)
			}
			if len(a.First) < maxFirst {
				a.First = append(a.First, string(ev.Raw))
			}
		}
		dec.Close()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if a.MinTime == math.MaxInt64 {
		a.MinTime = 0
	}
	a.Devices, a.Users = devs.Distinct(), users.Distinct()
	a.HotDevs, a.HotUsers = devs.Top(5), users.Top(5)
	for _, top := range [][]hotids.IDCount{a.HotDevs, a.HotUsers} {
		if len(top) > 0 {
			if lb := LowerBound(top[0].Count, a.EPS); lb >= a.LowerBound {
				a.LowerBound, a.HottestID = lb, top[0].ID
			}
		}
	}
	return a, nil
}

// WriteText prints the analysis for humans. validate selects the
// validation-oriented layout.
func (a *Analysis) WriteText(w io.Writer, validate bool) {
	p := a.Plan
	fmt.Fprintf(w, "objects:  %d (%s)\n", p.Objects, humanBytes(p.Bytes))
	fmt.Fprintf(w, "records:  %d read, %d valid, %d invalid\n", a.Records, a.Valid, a.Invalid)
	if a.MinTime > 0 {
		fmt.Fprintf(w, "time:     %s .. %s\n", time.UnixMilli(a.MinTime).UTC().Format(time.RFC3339), time.UnixMilli(a.MaxTime).UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "ids:      about %d distinct devices, %d distinct users\n", a.Devices, a.Users)
	if len(a.HotDevs) > 0 || len(a.HotUsers) > 0 {
		fmt.Fprintln(w, "hottest ids:")
		for _, c := range a.HotDevs {
			fmt.Fprintf(w, "  device %-40s %d events\n", c.ID, c.Count)
		}
		for _, c := range a.HotUsers {
			fmt.Fprintf(w, "  user   %-40s %d events\n", c.ID, c.Count)
		}
	}
	if len(a.Reasons) > 0 {
		fmt.Fprintln(w, "invalid records by reason:")
		type rc struct {
			r string
			n int64
		}
		var rs []rc
		for r, n := range a.Reasons {
			rs = append(rs, rc{r, n})
		}
		sort.Slice(rs, func(i, j int) bool { return rs[i].n > rs[j].n || rs[i].n == rs[j].n && rs[i].r < rs[j].r })
		for _, x := range rs {
			fmt.Fprintf(w, "  %7d  %s\n", x.n, x.r)
		}
		fmt.Fprintln(w, "samples:")
		for _, s := range a.Samples {
			fmt.Fprintf(w, "  %s: %s\n", s.Where, s.Reason)
		}
	}
	for _, f := range a.Failed {
		fmt.Fprintf(w, "unreadable: %s: %s\n", f.Where, f.Reason)
	}
	if validate {
		if len(a.First) > 0 {
			fmt.Fprintln(w, "first mapped events:")
			for _, e := range a.First {
				fmt.Fprintf(w, "  %s\n", e)
			}
		}
		return
	}
	fmt.Fprintf(w, "routes:   %d events via /batch, %d via /2/httpapi\n", a.ByRoute[backfill.RouteBatch], a.ByRoute[backfill.RouteHTTP])
	fmt.Fprintf(w, "lower bound on the finishing time: %s", a.LowerBound)
	if a.HottestID != "" {
		fmt.Fprintf(w, " (the hottest id, %s, at %d events/s per id over 30 s windows)", a.HottestID, a.EPS)
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
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", i, obj.Route, humanBytes(obj.Size), obj.URL)
	}
	tw.Flush()
	if len(p.Tail) > 0 {
		fmt.Fprintf(w, "tail: %d trailing partitions (%d events) go through /2/httpapi after everything else:\n", len(p.Tail), p.TailEvents)
		for _, part := range p.Tail {
			fmt.Fprintf(w, "  %s (%d objects, %d events)\n", part.Name, len(part.Objects), part.Events)
		}
	}
	return nil
}

// OpenReader returns a reader configured like a run of cfg (for plan).
func OpenReader(cfg *Config) (*reader.Reader, error) {
	return reader.New(readerOptions(cfg))
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

var _ = pipeline.DefaultLanes
