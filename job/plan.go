package job

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"path"
	"strings"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/reader"
)

// tailWindow is how many trailing objects the planner remembers as tail
// candidates while it streams the listing once.
const tailWindow = 256

// Partition is a group of objects routed together: one object, or every
// object of a hive-style folder such as dt=2024-06-01/.
type Partition struct {
	Name    string
	Objects []reader.Object
	Events  int64 // counted only for tail candidates; -1 when not counted
	Route   backfill.Route
}

// PlanResult is what the planner decided before any event is sent.
type PlanResult struct {
	Objects int   // objects in this shard
	Bytes   int64 // their stored size
	// Tail holds the trailing partitions routed to /2/httpapi.
	Tail []Partition
	// TailEvents is the number of events in Tail.
	TailEvents int64

	cfg        *Config
	shardIdx   int
	shardCount int
	tailSet    map[string]bool
}

// InShard reports whether object url belongs to shard i of n: objects are
// split by a hash of their URL, which stays stable as new objects arrive.
func InShard(url string, i, n int) bool {
	if n <= 1 {
		return true
	}
	h := fnv.New32a()
	h.Write([]byte(url))
	return int(h.Sum32()%uint32(n)) == i
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

// Plan lists the sources once (streaming, keeping only the trailing
// objects) and decides which trailing partitions go to /2/httpapi.
func Plan(ctx context.Context, rd *reader.Reader, cfg *Config, shardIdx, shardCount int) (*PlanResult, error) {
	p := &PlanResult{cfg: cfg, shardIdx: shardIdx, shardCount: shardCount, tailSet: map[string]bool{}}
	ls := rd.List(ctx, cfg.Sources)
	var ring []reader.Object
	for {
		obj, err := ls.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list sources: %w", err)
		}
		if !InShard(obj.URL, shardIdx, shardCount) {
			continue
		}
		p.Objects++
		p.Bytes += obj.Size
		if cfg.Route == RouteAuto {
			if len(ring) == tailWindow {
				ring = append(ring[:0], ring[1:]...)
			}
			ring = append(ring, obj)
		}
	}
	switch cfg.Route {
	case RouteHTTP:
		p.tailSet = nil // everything
	case RouteAuto:
		if err := p.pickTail(ctx, rd, ring); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// pickTail walks the trailing partitions from the newest back and routes
// them to /2/httpapi while they stay small: at most cfg.TailEvents events
// together, and no device or user with more events than one HTTP V2 window
// allows at the configured pace. The first partition of the listing always
// goes through /batch: a tail needs a body.
func (p *PlanResult) pickTail(ctx context.Context, rd *reader.Reader, ring []reader.Object) error {
	var parts []Partition
	for _, obj := range ring {
		name := partitionOf(obj)
		if n := len(parts); n > 0 && parts[n-1].Name == name {
			parts[n-1].Objects = append(parts[n-1].Objects, obj)
			continue
		}
		parts = append(parts, Partition{Name: name, Objects: []reader.Object{obj}})
	}
	// The oldest remembered partition may be cut by the ring, and when the
	// whole listing fits the ring it is the first partition: never a tail.
	if len(parts) <= 1 {
		return nil
	}
	parts = parts[1:]
	httpEPS := p.cfg.HTTPEPS
	if httpEPS <= 0 {
		httpEPS = pipeline.DefaultHTTPEPS
	}
	perID := int64(httpEPS * 30)
	mapper, err := newMapper(p.cfg)
	if err != nil {
		return err
	}
	devices := map[string]int64{}
	users := map[string]int64{}
	var total int64
	var tail []Partition
	for i := len(parts) - 1; i >= 0; i-- {
		part := parts[i]
		var n int64
		ok := true
		for _, obj := range part.Objects {
			// A cheap bound before reading: events are at least ~20 bytes.
			if obj.Size > int64(p.cfg.TailEvents)*200 {
				ok = false
				break
			}
			c, err := countEvents(ctx, rd, obj, mapper, devices, users, perID)
			if err != nil {
				ok = false
				break
			}
			n += c
			if total+n > int64(p.cfg.TailEvents) {
				ok = false
				break
			}
		}
		if ok {
			for _, m := range []map[string]int64{devices, users} {
				for _, c := range m {
					if c > perID {
						ok = false
					}
				}
			}
		}
		if !ok {
			break
		}
		total += n
		part.Events = n
		part.Route = backfill.RouteHTTP
		tail = append([]Partition{part}, tail...)
	}
	p.Tail, p.TailEvents = tail, total
	for _, part := range tail {
		for _, obj := range part.Objects {
			p.tailSet[obj.URL] = true
		}
	}
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
	if p.tailSet == nil || p.tailSet[url] {
		return backfill.RouteHTTP
	}
	return backfill.RouteBatch
}

// Lister lists the sources again, in the same order, as pipeline objects
// with their routes.
func (p *PlanResult) Lister(ctx context.Context, rd *reader.Reader) pipeline.Lister {
	return &lister{p: p, rd: rd, ls: rd.List(ctx, p.cfg.Sources)}
}

type lister struct {
	p  *PlanResult
	rd *reader.Reader
	ls *reader.Listing
}

func (l *lister) Next(ctx context.Context) (pipeline.Object, error) {
	for {
		obj, err := l.ls.Next(ctx)
		if err != nil {
			return pipeline.Object{}, err
		}
		if !InShard(obj.URL, l.p.shardIdx, l.p.shardCount) {
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
		}, nil
	}
}
