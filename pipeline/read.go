package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/deadletter"
	"golang.org/x/sync/semaphore"
)

type mapJob struct {
	recs []backfill.Record
	evs  []backfill.Event
	errs []error
	done chan struct{}
	// barrier, when set, is a route switch: wait for all lanes to drain.
	barrier bool
}

// mapJobs recycles the slices of map jobs once the dispatcher is done with
// them (events are copied into the lanes): a job's three slices were a
// real share of the pipeline's allocations.
var mapJobs = sync.Pool{New: func() any {
	return &mapJob{
		recs: make([]backfill.Record, 0, mapBatch),
		evs:  make([]backfill.Event, mapBatch),
		errs: make([]error, mapBatch),
	}
}}

// newMapJob returns an empty job from the pool.
func newMapJob() *mapJob {
	j := mapJobs.Get().(*mapJob)
	j.done = make(chan struct{})
	return j
}

// releaseMapJob clears j, dropping its references, and returns it to the
// pool.
func releaseMapJob(j *mapJob) {
	if j.barrier || cap(j.recs) != mapBatch {
		return
	}
	clear(j.recs)
	clear(j.evs)
	clear(j.errs)
	j.recs, j.done = j.recs[:0], nil
	mapJobs.Put(j)
}

func (r *run) objectStat(url string, f func(*ObjectStat)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.objIdx[url]
	if !ok {
		return
	}
	f(&r.objects[i])
}

// opened is an object listed, checked against its checkpoint, begun and
// opened by openAll, ahead of the reader: the part of reading an object that
// waits on storage (a GET per object on a bucket). readAll does everything
// else with it, in listing order.
type opened struct {
	obj     Object
	listErr error  // the listing failed here (nothing else is set)
	old     string // the checkpointed fingerprint, when it differs (not begun)
	start   checkpoint.Start
	ready   chan struct{} // closed once dec and openErr are set
	dec     Decoder
	openErr error
	sem     *semaphore.Weighted
	weight  int64 // held in sem until the object is read
}

// Read-ahead bounds: about openAhead objects are opened and waiting (the
// channel's capacity, plus the one being read and the one being prepared), and
// at most openAheadBytes of them by listed size (an object at least that
// large is opened only once the reader is done with the others), so that a
// bucket of small objects is not read one storage round trip at a time,
// while large objects, whose reading hides the next open, hold nothing
// extra.
const (
	openAhead      = 16
	openAheadBytes = 8 << 20
)

// openAll lists the objects and prepares each in order (see opened),
// handing them to readAll through out, until the listing ends or ctx does.
// Objects are opened concurrently (about openAhead at once, each in its own
// goroutine, which openAll waits for before it returns): on a bucket an
// open is a round trip.
func (r *run) openAll(ctx context.Context, sem *semaphore.Weighted, out chan<- *opened) {
	tr := r.deps.Tracker
	var opening sync.WaitGroup
	defer opening.Wait()
	for ctx.Err() == nil {
		obj, err := r.deps.Objects.Next(ctx)
		if err == io.EOF {
			return
		}
		if err != nil {
			_ = send(ctx, out, &opened{listErr: err})
			return
		}
		p := &opened{obj: obj, ready: make(chan struct{}), sem: sem}
		if old, ok := tr.Fingerprint(obj.URL); ok && !r.cfg.Reprocess && old != "" && obj.Fingerprint != "" && old != obj.Fingerprint {
			p.old = old
		} else {
			p.weight = min(max(obj.Size, 1), openAheadBytes)
			if sem.Acquire(ctx, p.weight) != nil {
				return
			}
			p.start = tr.Begin(obj.URL, obj.Fingerprint)
		}
		if p.old == "" && !p.start.Done {
			opening.Go(func() {
				defer close(p.ready)
				p.dec, p.openErr = obj.Open(ctx, p.start.Resume)
			})
		} else {
			close(p.ready)
		}
		if send(ctx, out, p) != nil {
			p.close()
			return
		}
	}
}

// close releases what p holds once it is read (or abandoned), after its
// open ended.
func (p *opened) close() {
	if p.ready != nil {
		<-p.ready
	}
	if p.dec != nil {
		p.dec.Close()
		p.dec = nil
	}
	if p.weight > 0 {
		p.sem.Release(p.weight)
		p.weight = 0
	}
}

// readAll reads the objects openAll prepared, in order, registering every
// record with the tracker and handing batches of records to the map workers
// (jobs) while recording their order (ordered).
func (r *run) readAll(ctx context.Context, in <-chan *opened, jobs, ordered chan<- *mapJob) error {
	route := backfill.RouteBatch
	fill := &jobFill{jobs: jobs, ordered: ordered}
	defer fill.release()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var p *opened
		select {
		case p = <-in:
		case <-ctx.Done():
			return ctx.Err()
		}
		if p == nil { // the listing ended
			if err := ctx.Err(); err != nil {
				return err // openAll stopped early
			}
			if err := fill.flush(ctx); err != nil {
				return err
			}
			r.mu.Lock()
			r.listed = true
			r.mu.Unlock()
			return nil
		}
		if p.listErr != nil {
			return fmt.Errorf("list sources: %w", p.listErr)
		}
		obj := p.obj
		r.stats.ObjectsListed.Add(1)
		if obj.Route == backfill.RouteHTTP && route != backfill.RouteHTTP {
			// Tail partitions go after everything sent through /batch.
			route = backfill.RouteHTTP
			if err := fill.flush(ctx); err != nil {
				p.close()
				return err
			}
			j := &mapJob{barrier: true, done: make(chan struct{})}
			close(j.done)
			if err := send(ctx, ordered, j); err != nil {
				p.close()
				return err
			}
		}
		err := r.readObject(ctx, p, fill)
		p.close()
		if err != nil {
			return err
		}
		if err := fill.objectDone(ctx); err != nil {
			return err
		}
	}
}

// jobFill fills map jobs with records, across objects: a bucket of tiny
// objects would otherwise cost a job per object (two channel hand-offs and
// the wake-ups of a map worker and of the dispatcher for ten records). A job
// is sent when full, before a route barrier, at the end of the listing, and
// at the end of an object once it has waited maxJobWait, so records of an
// object are not held while the next ones are slow to open.
type jobFill struct {
	job           *mapJob
	since         time.Time // when job's first record was added
	jobs, ordered chan<- *mapJob
}

// maxJobWait bounds how long read records wait in a job that is not full
// while objects are opened.
const maxJobWait = 50 * time.Millisecond

func (f *jobFill) add(ctx context.Context, rec backfill.Record) error {
	if f.job == nil {
		f.job = newMapJob()
	}
	if len(f.job.recs) == 0 {
		f.since = time.Now()
	}
	f.job.recs = append(f.job.recs, rec)
	if len(f.job.recs) == mapBatch {
		return f.flush(ctx)
	}
	return nil
}

// flush sends the job, if it holds records.
func (f *jobFill) flush(ctx context.Context) error {
	if f.job == nil || len(f.job.recs) == 0 {
		return nil
	}
	j := f.job
	f.job = nil
	if err := send(ctx, f.ordered, j); err != nil {
		return err
	}
	return send(ctx, f.jobs, j)
}

// objectDone flushes a job that has waited long enough.
func (f *jobFill) objectDone(ctx context.Context) error {
	if f.job != nil && len(f.job.recs) > 0 && time.Since(f.since) >= maxJobWait {
		return f.flush(ctx)
	}
	return nil
}

func (f *jobFill) release() {
	if f.job != nil {
		releaseMapJob(f.job)
		f.job = nil
	}
}

func (r *run) readObject(ctx context.Context, p *opened, fill *jobFill) error {
	tr := r.deps.Tracker
	obj, start := p.obj, p.start
	if p.old != "" {
		err := fmt.Errorf("changed since it was checkpointed (was %s, now %s); left alone so old and new content are not mixed: rerun with --force to send it again from its first record (events already sent keep their insert_ids, so Amplitude drops them as duplicates within 7 days)", p.old, obj.Fingerprint)
		r.mu.Lock()
		r.objIdx[obj.URL] = len(r.objects)
		r.objects = append(r.objects, ObjectStat{URL: obj.URL, Route: obj.Route, Err: err.Error(), Started: time.Now(), Finished: time.Now()})
		r.mu.Unlock()
		tr.Fail(obj.URL, err)
		r.stats.ObjectsFailed.Add(1)
		r.stats.bytesDone.Add(obj.Size)
		if r.cfg.FailFast { // returned, so not logged: the caller reports it
			return fmt.Errorf("%s: %w", obj.URL, err)
		}
		r.log.Error("object changed since it was checkpointed", "object", obj.URL, "was", p.old, "now", obj.Fingerprint)
		return nil
	}
	r.mu.Lock()
	r.objIdx[obj.URL] = len(r.objects)
	r.objects = append(r.objects, ObjectStat{URL: obj.URL, Route: obj.Route, Skipped: start.Done, Changed: start.Changed, Started: time.Now()})
	if !start.Done {
		r.sources[obj.URL] = obj
	}
	r.mu.Unlock()
	if start.Changed {
		r.log.Warn("object changed since it was checkpointed; its progress restarts from the first record (already accepted events keep their insert_ids and are deduplicated by Amplitude)", "object", obj.URL)
	}
	if start.Done {
		r.stats.ObjectsSkipped.Add(1)
		r.stats.ObjectsDone.Add(1)
		r.stats.bytesDone.Add(obj.Size)
		return nil
	}
	defer func() {
		r.stats.cur.Store(nil)
		r.stats.bytesDone.Add(obj.Size)
	}()
	fail := func(err error) error {
		tr.Fail(obj.URL, err)
		r.stats.ObjectsFailed.Add(1)
		msg := err.Error()
		r.objectStat(obj.URL, func(s *ObjectStat) { s.Err = msg; s.Finished = time.Now() })
		if r.cfg.FailFast { // returned, so not logged: the caller reports it
			if strings.HasPrefix(msg, obj.URL) { // reader errors name the object already
				return err
			}
			return fmt.Errorf("%s: %w", obj.URL, err)
		}
		r.log.Error("object failed", "object", obj.URL, "err", msg)
		return nil
	}
	select {
	case <-p.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	dec, err := p.dec, p.openErr
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fail(err)
	}
	if bc, ok := dec.(byteCounter); ok {
		r.stats.cur.Store(&bc)
	}

	var (
		records int64
		total   int64 = -1
	)
	for {
		rec, err := dec.Next(ctx)
		if err == io.EOF {
			break
		}
		var recErr *backfill.RecordError
		switch {
		case err == nil:
		case errors.As(err, &recErr):
			// A bad record is settled right away: dead-letter it.
			rec.Pos = recErr.Pos
			total = recErr.Pos.Record + 1
			if tr.Read(recErr.Pos) {
				continue
			}
			if !r.ownsPosition(recErr.Pos) {
				tr.Settle(recErr.Pos, checkpoint.Foreign)
				r.stats.Foreign.Add(1)
				continue
			}
			records++
			r.stats.Read.Add(1)
			if err := r.reject(recErr.Pos, deadletter.StageDecode, recErr.Reason, 0, "", recErr.Raw); err != nil {
				return err
			}
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			if ferr := fill.flush(ctx); ferr != nil {
				return ferr
			}
			r.objectStat(obj.URL, func(s *ObjectStat) { s.Records = records })
			return fail(err)
		}
		total = rec.Pos.Record + 1
		if tr.Read(rec.Pos) {
			continue
		}
		records++
		r.stats.Read.Add(1)
		if err := fill.add(ctx, rec); err != nil {
			return err
		}
	}
	if total < 0 {
		total = start.Resume.Record
		if start.Resume.Record == 0 {
			total = 0
		}
	}
	tr.EOF(obj.URL, total)
	r.log.Debug("object read", "object", obj.URL, "records", records, "route", obj.Route.String())
	r.stats.ObjectsDone.Add(1)
	r.objectStat(obj.URL, func(s *ObjectStat) { s.Records = records; s.Finished = time.Now() })
	return nil
}

func (r *run) mapJob(j *mapJob) {
	j.evs, j.errs = j.evs[:len(j.recs)], j.errs[:len(j.recs)]
	for i, rec := range j.recs {
		j.evs[i], j.errs[i] = r.deps.Mapper.Map(rec)
	}
	close(j.done)
}
