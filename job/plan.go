package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/reader"
)

// tailWindow is how many trailing objects the planner remembers as tail
// candidates while it streams the listing once.
const tailWindow = 256

// DefaultTailRatio is Config.TailRatio: a trailing partition is small when
// it holds at most a quarter of the bytes of the median partition before
// the tail.
const DefaultTailRatio = 0.25

// PlanVersion is RoutePlan.Version written by this build.
const PlanVersion = 1

// RoutePlan is the route plan of one generation of a job: which objects it
// covers and which of its trailing partitions go through /2/httpapi. It is
// decided once from the job's whole listing, recorded at the root of the
// checkpoint location by the first run of the generation, and followed by
// every shard and every resume until all of them completed it (see
// jobPlan), so that the same events reach the same endpoint whether the job
// runs as one process or as N, and whatever lands in the bucket meanwhile.
// Field names are part of the recorded format.
type RoutePlan struct {
	Version    int       `json:"version"`
	Generation int       `json:"generation"`
	Created    time.Time `json:"created"`
	// Job is the fingerprint of the job the plan was made for
	// (Config.Fingerprint without the shard); a plan of another job is
	// never followed.
	Job string `json:"job_fingerprint"`
	// Route is the --route the plan was made with.
	Route string `json:"route"`
	// The rule's parameters (RouteAuto): at most TailEvents events in the
	// tail, each tail partition at most TailRatio × MedianBytes, and no id
	// with more than PerIDEvents events (one HTTP V2 window at --http-eps).
	TailEvents  int     `json:"tail_events"`
	TailRatio   float64 `json:"tail_ratio"`
	PerIDEvents int64   `json:"per_id_events"`
	// Objects, Bytes and Partitions describe the listing.
	Objects    int   `json:"objects"`
	Bytes      int64 `json:"bytes"`
	Partitions int   `json:"partitions"`
	// MedianBytes is the median stored size of the partitions before the
	// tail (before the last partition when there is no tail).
	MedianBytes int64 `json:"median_partition_bytes"`
	// Tail holds the trailing partitions routed to /2/httpapi, in listing
	// order, and TailCount their events.
	Tail      []Partition `json:"tail"`
	TailCount int64       `json:"tail_event_count"`
	// Stop says why the partition before the tail stays on /batch.
	Stop string `json:"stop,omitempty"`
	// Listed is every object URL of the listing, in order: the objects of
	// this generation. Objects that land later wait for the next one.
	Listed []string `json:"listed"`
}

// Partition is a group of objects routed together: one object, or every
// object of a hive-style folder such as dt=2024-06-01/.
type Partition struct {
	Name    string   `json:"name"`
	Objects []string `json:"objects"`
	Bytes   int64    `json:"bytes"`
	Events  int64    `json:"events"`
}

// PlanResult is a route plan in use by a run or a dry run.
type PlanResult struct {
	*RoutePlan
	// Recorded is set when the plan was read from the checkpoint location
	// (made by an earlier run or another shard) instead of made here.
	Recorded bool

	cfg     *Config
	tailSet map[string]bool
	listed  map[string]bool
}

func (p *PlanResult) index() {
	p.tailSet, p.listed = map[string]bool{}, make(map[string]bool, len(p.Listed))
	for _, u := range p.Listed {
		p.listed[u] = true
	}
	for _, part := range p.Tail {
		for _, u := range part.Objects {
			p.tailSet[u] = true
		}
	}
}

// partitionOf returns the partition name of an object: its hive-style
// folder (the deepest path segment "k=v") or the object itself.
func partitionOf(obj reader.Object) string {
	// Keep "scheme://" out of path.Dir, which would clean it to "scheme:/".
	scheme, p := "", obj.URL
	if i := strings.Index(p, "://"); i >= 0 {
		scheme, p = p[:i+3], p[i+3:]
	}
	dir := path.Dir(p)
	for d := dir; d != "." && d != "/" && strings.Contains(d, "/"); d = path.Dir(d) {
		if strings.Contains(path.Base(d), "=") {
			return scheme + d + "/"
		}
		if path.Dir(d) == d {
			break
		}
	}
	return obj.URL
}

// partSize is one partition of the listing while planning.
type partSize struct {
	name    string
	bytes   int64
	objects int
}

// Plan lists the sources once and decides the route of every object: the
// plan a new generation of the job would record. It does not depend on the
// shard: every shard lists every object.
func Plan(ctx context.Context, rd *reader.Reader, cfg *Config) (*PlanResult, error) {
	rp := &RoutePlan{Version: PlanVersion, Created: time.Now().UTC(), Job: planFingerprint(cfg), Route: cfg.Route}
	ls := rd.List(ctx, cfg.Sources)
	var (
		ring  []reader.Object
		parts []partSize
	)
	for {
		obj, err := ls.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list sources: %w", err)
		}
		rp.Objects++
		rp.Bytes += obj.Size
		rp.Listed = append(rp.Listed, obj.URL)
		name := partitionOf(obj)
		if n := len(parts); n > 0 && parts[n-1].name == name {
			parts[n-1].bytes += obj.Size
			parts[n-1].objects++
		} else {
			parts = append(parts, partSize{name: name, bytes: obj.Size, objects: 1})
		}
		if len(ring) == tailWindow {
			ring = append(ring[:0], ring[1:]...)
		}
		ring = append(ring, obj)
	}
	rp.Partitions = len(parts)
	p := &PlanResult{RoutePlan: rp, cfg: cfg}
	if cfg.Route == RouteAuto {
		if err := p.pickTail(ctx, rd, parts, ring); err != nil {
			return nil, err
		}
	}
	p.index()
	return p, nil
}

// median returns the median of sorted (the mean of the middle two for an
// even length), 0 for none.
func median(sorted []int64) int64 {
	n := len(sorted)
	switch {
	case n == 0:
		return 0
	case n%2 == 1:
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// pickTail walks the trailing partitions from the newest back and routes
// them to /2/httpapi while they stay small, relative to the data and in
// absolute terms: every tail partition at most TailRatio × the median size
// of the partitions before the tail; at most TailEvents events together;
// no device or user with more events than one HTTP V2 window allows at the
// configured pace. The first partition never goes: a tail needs a body (so
// a single partition, or partitions all alike, have no tail).
func (p *PlanResult) pickTail(ctx context.Context, rd *reader.Reader, parts []partSize, ring []reader.Object) error {
	rp, cfg := p.RoutePlan, p.cfg
	httpEPS := cfg.HTTPEPS
	if httpEPS <= 0 {
		httpEPS = pipeline.DefaultHTTPEPS
	}
	rp.TailEvents, rp.TailRatio, rp.PerIDEvents = cfg.TailEvents, cfg.TailRatio, int64(httpEPS*30)
	sorted := make([]int64, len(parts))
	for i, pt := range parts {
		sorted[i] = pt.bytes
	}
	slices.Sort(sorted)
	rp.MedianBytes = median(sorted)
	if len(parts) <= 1 {
		return nil
	}
	mapper, err := newMapper(cfg)
	if err != nil {
		return err
	}
	// The ring's objects by partition, newest last.
	var ringParts [][]reader.Object
	for i, obj := range ring {
		if i > 0 && partitionOf(ring[i-1]) == partitionOf(obj) {
			ringParts[len(ringParts)-1] = append(ringParts[len(ringParts)-1], obj)
			continue
		}
		ringParts = append(ringParts, []reader.Object{obj})
	}
	devices, users := map[string]int64{}, map[string]int64{}
	var (
		total   int64
		maxTail int64
		tail    []Partition
	)
	stop := func(format string, a ...any) { rp.Stop = fmt.Sprintf(format, a...) }
	for k := 1; k < len(parts); k++ {
		i := len(parts) - k
		part := parts[i]
		// The partitions before the candidate are the reference.
		j, _ := slices.BinarySearch(sorted, part.bytes)
		sorted = slices.Delete(sorted, j, j+1)
		med := median(sorted)
		maxTail = max(maxTail, part.bytes)
		if float64(maxTail) > cfg.TailRatio*float64(med) {
			if maxTail == part.bytes {
				stop("%s (%s) is more than %g × the median partition before it (%s)", part.name, humanBytes(part.bytes), cfg.TailRatio, humanBytes(med))
			} else {
				stop("with %s the median partition before the tail (%s) falls below %g × its largest partition (%s)", part.name, humanBytes(med), cfg.TailRatio, humanBytes(maxTail))
			}
			break
		}
		r := len(ringParts) - k
		if r < 0 || len(ringParts[r]) != part.objects {
			// Not wholly among the trailing objects remembered.
			stop("%s is further back than the %d trailing objects the planner considers", part.name, tailWindow)
			break
		}
		var n int64
		ok, why := true, ""
		for _, obj := range ringParts[r] {
			// A cheap bound before reading: events are at least ~20 bytes.
			if obj.Size > int64(cfg.TailEvents)*200 {
				ok, why = false, fmt.Sprintf("%s is too big to hold at most --tail-events %d events", obj.URL, cfg.TailEvents)
				break
			}
			c, err := countEvents(ctx, rd, obj, mapper, devices, users, rp.PerIDEvents)
			n += c
			if errors.Is(err, errTooBig) {
				ok, why = false, fmt.Sprintf("an id of %s has more than %d events, one HTTP V2 window at --http-eps %d", part.name, rp.PerIDEvents, httpEPS)
				break
			}
			if err != nil {
				ok, why = false, fmt.Sprintf("%s could not be read: %v", obj.URL, err)
				break
			}
			if total+n > int64(cfg.TailEvents) {
				ok, why = false, fmt.Sprintf("with %s the tail would hold more than --tail-events %d events", part.name, cfg.TailEvents)
				break
			}
		}
		if !ok {
			rp.Stop = why
			break
		}
		total += n
		urls := make([]string, len(ringParts[r]))
		for x, obj := range ringParts[r] {
			urls[x] = obj.URL
		}
		tail = append([]Partition{{Name: part.name, Objects: urls, Bytes: part.bytes, Events: n}}, tail...)
		rp.MedianBytes = med
	}
	rp.Tail, rp.TailCount = tail, total
	return nil
}

var errTooBig = errors.New("partition too large for the tail route")

// countEvents counts the valid events of obj into devices and users.
func countEvents(ctx context.Context, rd *reader.Reader, obj reader.Object, m interface {
	Map(backfill.Record) (backfill.Event, error)
}, devices, users map[string]int64, perID int64) (int64, error) {
	dec, err := rd.Open(ctx, obj, reader.Start{})
	if err != nil {
		return 0, err
	}
	defer dec.Close()
	var n int64
	for {
		rec, err := dec.Next(ctx)
		if err == io.EOF {
			return n, nil
		}
		var recErr *backfill.RecordError
		if errors.As(err, &recErr) {
			continue
		}
		if err != nil {
			return n, err
		}
		ev, err := m.Map(rec)
		if err != nil {
			continue
		}
		n++
		if ev.DeviceID != "" {
			devices[ev.DeviceID]++
			if devices[ev.DeviceID] > perID {
				return n, errTooBig
			}
		}
		if ev.UserID != "" {
			users[ev.UserID]++
			if users[ev.UserID] > perID {
				return n, errTooBig
			}
		}
	}
}

// RouteOf returns the route of object url under this plan.
func (p *PlanResult) RouteOf(url string) backfill.Route {
	if p.Route == RouteHTTP || p.tailSet[url] {
		return backfill.RouteHTTP
	}
	return backfill.RouteBatch
}

// Lister lists the sources again, in the same order, as pipeline objects
// with their routes: the objects of the plan only (one that landed after
// the plan was made waits for the next generation).
func (p *PlanResult) Lister(ctx context.Context, rd *reader.Reader) pipeline.Lister {
	return &lister{p: p, rd: rd, ls: rd.List(ctx, p.cfg.Sources)}
}

type lister struct {
	p  *PlanResult
	rd *reader.Reader
	ls *reader.Listing
	// Later counts the objects listed that are not in the plan.
	later int
}

func (l *lister) Next(ctx context.Context) (pipeline.Object, error) {
	for {
		obj, err := l.ls.Next(ctx)
		if err != nil {
			if err == io.EOF && l.later > 0 {
				l.p.cfg.Logger.Info("objects that landed after the job's route plan was made wait for the next run", "objects", l.later, "plan", l.p.Generation)
			}
			return pipeline.Object{}, err
		}
		if !l.p.listed[obj.URL] {
			l.later++
			continue
		}
		return pipeline.Object{
			URL:         obj.URL,
			Fingerprint: obj.Fingerprint,
			Size:        obj.Size,
			Route:       l.p.RouteOf(obj.URL),
			Open: func(ctx context.Context, start backfill.Position) (pipeline.Decoder, error) {
				return l.rd.Open(ctx, obj, reader.StartAt(start))
			},
			Check: func(ctx context.Context) error { return l.rd.Check(ctx, obj) },
		}, nil
	}
}
