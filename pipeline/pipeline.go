package pipeline

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/chunker"
	"github.com/backfillhq/backfill/deadletter"
	"github.com/backfillhq/backfill/hotids"
	"github.com/backfillhq/backfill/mapping"
	"github.com/backfillhq/backfill/uploader"
)

// Defaults for Config.
const (
	DefaultLanes           = 16
	DefaultMapWorkers      = 2
	DefaultCheckpointEvery = 5 * time.Second
	DefaultParkFor         = time.Hour // Amplitude's daily-quota window rolls hourly
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultHTTPEPS paces each id on /2/httpapi: 80% of its 30 events/s
	// limit, the safety margin for the tail route.
	DefaultHTTPEPS = 24
	mapBatch       = 256
	// hotExact and hotSample: see dispatch.
	hotExact  = 1 << 16
	hotSample = 8
	// finalSaveTimeout bounds the checkpoint save at the end of a run.
	finalSaveTimeout = 30 * time.Second
)

var (
	// ErrInterrupted is returned when the soft context ended the run before
	// every object was read: the checkpoint holds where to resume.
	ErrInterrupted = errors.New("interrupted")
	// ErrParked is returned when the run ended with events held back for
	// ids over Amplitude's daily quota; a later run sends them.
	ErrParked = errors.New("events parked for ids over the daily quota")
)

// Object is one source object to read.
type Object struct {
	// URL is the canonical object URL, the key of its checkpoint progress.
	URL string
	// Fingerprint identifies the object's content (size, ETag, mtime).
	Fingerprint string
	// Size is the stored size in bytes, for progress.
	Size int64
	// Route is the endpoint its events go to. Objects routed to
	// backfill.RouteHTTP must come after every RouteBatch object: they are
	// sent once all Batch traffic has settled, so a device's newer events
	// never overtake its older ones.
	Route backfill.Route
	// Open returns a decoder producing records from start (a resume point;
	// the zero Position with Offset 0 means the beginning).
	Open func(ctx context.Context, start backfill.Position) (Decoder, error)
}

// Decoder yields the records of one object (see reader.Decoder).
type Decoder interface {
	Next(ctx context.Context) (backfill.Record, error)
	Close() error
}

// Lister yields objects in processing order and io.EOF at the end.
type Lister interface {
	Next(ctx context.Context) (Object, error)
}

// Mapper turns a source record into a validated event (see mapping.Mapper).
// Errors are *backfill.RecordError and the record is dead-lettered. The
// pipeline gives each record to Map once and never reads its Data again, so
// the event's Raw may be the record's buffer (mapping.Options.OwnRecords);
// it must not be shared with anything else, because the pipeline recycles
// it once the event is accepted (backfill.ReleaseRecordData).
type Mapper interface {
	Map(rec backfill.Record) (backfill.Event, error)
}

// Sender delivers events (see uploader.Client). Send must not keep any
// event's Raw once it returns: the pipeline recycles the buffers of the
// accepted ones (backfill.ReleaseRecordData).
type Sender interface {
	Send(ctx context.Context, route backfill.Route, events []backfill.Event) (uploader.Result, error)
}

// DeadLetter receives rejected records (see deadletter.Writer).
type DeadLetter interface {
	Write(e deadletter.Entry) error
	Size() int64
	Sync() (int64, error)
}

// Config tunes a run. Zero fields take the Default* values.
type Config struct {
	// Lanes is the number of device lanes, i.e. the most requests in flight.
	Lanes int
	// EPS paces each device_id and user_id on /batch, in events per second
	// averaged over Amplitude's 30 s window; <0 means unpaced.
	EPS int
	// HTTPEPS is the same for /2/httpapi.
	HTTPEPS int
	// DailyBudget, when > 0, caps each device_id and user_id at this many
	// events per rolling 24 h (both routes), to stay under Amplitude's
	// daily quota instead of meeting its 429; ids over it are parked.
	DailyBudget int
	// BatchSize caps events per request (at most 2,000).
	BatchSize int
	// MaxBatchBytes and MaxHTTPBytes cap request bodies per route.
	MaxBatchBytes, MaxHTTPBytes int
	// Overhead is the body size without events (uploader.Client.Overhead).
	Overhead int
	// Linger is how long a request that is not full waits for more events.
	Linger time.Duration
	// MapWorkers is the number of goroutines mapping records to events.
	MapWorkers int
	// CheckpointEvery is the interval between checkpoint saves.
	CheckpointEvery time.Duration
	// ShutdownTimeout is how long requests in flight may take to finish
	// after the soft context ends; default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// WaitParked keeps the run going while ids are parked for their daily
	// quota, instead of ending with ErrParked.
	WaitParked bool
	// ParkFor is how long an id over its daily quota is held back.
	ParkFor time.Duration
	// FailFast ends the run at the first object-level error.
	FailFast bool
	// Reprocess re-reads objects whose content changed since they were
	// checkpointed, from their first record. Without it such an object is
	// reported as failed and left alone, so old and new content are never
	// mixed.
	Reprocess bool
	// SpillDir is where lanes spill the backlog of hot devices; default
	// os.TempDir().
	SpillDir string
	// Logger receives progress and problems; default slog.Default().
	Logger *slog.Logger
	// Now is the clock for pacing; default time.Now.
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.Lanes <= 0 {
		c.Lanes = DefaultLanes
	}
	if c.EPS == 0 {
		c.EPS = chunker.DefaultEPS
	}
	if c.HTTPEPS == 0 {
		c.HTTPEPS = DefaultHTTPEPS
	}
	if c.BatchSize <= 0 || c.BatchSize > uploader.MaxEvents {
		c.BatchSize = uploader.MaxEvents
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = uploader.MaxBatchBytes * 95 / 100
	}
	if c.MaxHTTPBytes <= 0 {
		c.MaxHTTPBytes = uploader.MaxHTTPBytes * 95 / 100
	}
	if c.MapWorkers <= 0 {
		c.MapWorkers = DefaultMapWorkers
	}
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = DefaultCheckpointEvery
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.ParkFor <= 0 {
		c.ParkFor = DefaultParkFor
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Deps are the stages a run connects.
type Deps struct {
	Objects    Lister
	Mapper     Mapper
	Sender     Sender
	Tracker    *checkpoint.Tracker
	DeadLetter DeadLetter
	// Save persists the tracker's state; called every CheckpointEvery and
	// once at the end. It must call Tracker.Fill itself.
	Save func(ctx context.Context) error
}

// ObjectStat summarises one object of this run.
type ObjectStat struct {
	URL      string
	Route    backfill.Route
	Skipped  bool   // already complete in the checkpoint
	Changed  bool   // fingerprint differs from the checkpointed one; progress restarted
	Err      string // object-level error
	Records  int64  // records read this run (skipped settled records excluded)
	Started  time.Time
	Finished time.Time
}

// Stats are live counters of this run (not of the whole job: the tracker's
// Counters are cumulative). Read them with Snapshot.
type Stats struct {
	ObjectsListed   atomic.Int64
	ObjectsDone     atomic.Int64
	ObjectsFailed   atomic.Int64
	ObjectsSkipped  atomic.Int64
	Read            atomic.Int64 // records read this run
	Accepted        atomic.Int64
	Rejected        atomic.Int64
	RequestsBatch   atomic.Int64
	RequestsHTTPAPI atomic.Int64
	Responses429    atomic.Int64
	Responses5xx    atomic.Int64
	Retries         atomic.Int64
	Splits          atomic.Int64
	BytesSent       atomic.Int64
	Parked          atomic.Int64 // events currently parked
	Throttled       atomic.Int64 // ids paused after a 429, cumulative
	RouteHTTP       atomic.Bool  // the tail phase on /2/httpapi has started

	// Hottest is the device or user id with the most events sent (or
	// queued) in this run, set when Run returns; it decides the lower bound
	// on the run's duration.
	Hottest hotids.IDCount

	parkMu sync.Mutex
	parked map[string]checkpoint.ParkedID // by kind + ":" + id

	bytesDone atomic.Int64 // stored bytes of the objects finished
	cur       atomic.Pointer[byteCounter]
}

// ParkedIDs returns the ids parked for Amplitude's daily quota whose
// parking has not ended at now, sorted. The checkpoint records them for
// `backfill status`; a later run simply tries them again (one request each
// at most before they are parked anew if the quota still holds).
func (s *Stats) ParkedIDs(now time.Time) []checkpoint.ParkedID {
	s.parkMu.Lock()
	defer s.parkMu.Unlock()
	out := make([]checkpoint.ParkedID, 0, len(s.parked))
	for _, p := range s.parked {
		if p.Until.After(now) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (s *Stats) park(p checkpoint.ParkedID) {
	s.parkMu.Lock()
	defer s.parkMu.Unlock()
	if s.parked == nil {
		s.parked = map[string]checkpoint.ParkedID{}
	}
	s.parked[p.Kind+":"+p.ID] = p
}

// byteCounter is implemented by decoders that report the stored bytes they
// consumed (reader.Decoder does).
type byteCounter interface{ BytesRead() int64 }

// BytesRead returns the stored bytes read so far: finished objects plus the
// progress of the object being read.
func (s *Stats) BytesRead() int64 {
	n := s.bytesDone.Load()
	if c := s.cur.Load(); c != nil {
		n += (*c).BytesRead()
	}
	return n
}

// Run moves every record of deps.Objects to Amplitude or the dead-letter
// file. soft ends reading (first Ctrl-C); hard aborts everything (second
// Ctrl-C). stats may be nil; it is updated live for progress displays.
//
// Run returns nil when every object was read and every record settled,
// ErrInterrupted, ErrParked, an error wrapping uploader.ErrFatal, or the
// first object-level error with FailFast. Object errors without FailFast
// are reported in the returned []ObjectStat and do not stop the run.
func Run(hard, soft context.Context, cfg Config, deps Deps, stats *Stats) ([]ObjectStat, error) {
	cfg.defaults()
	if stats == nil {
		stats = new(Stats)
	}
	r := &run{cfg: cfg, deps: deps, stats: stats, log: cfg.Logger.With("component", "pipeline")}
	return r.run(hard, soft)
}

type run struct {
	cfg   Config
	deps  Deps
	stats *Stats
	log   *slog.Logger

	seed  maphash.Seed
	lanes [2][]*chunker.Lane // by route

	mu      sync.Mutex
	objects []ObjectStat
	objIdx  map[string]int

	listed  bool         // the listing was read to its end; under mu
	pending atomic.Int64 // events pushed to lanes and not yet settled
	// laneParked[route][i] is how many events lane i holds back only for
	// ids parked over their daily quota, as last seen by its goroutine.
	laneParked [2][]atomic.Int64
}

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

func (r *run) run(hard, soft context.Context) ([]ObjectStat, error) {
	cfg := r.cfg
	r.seed = maphash.MakeSeed()
	r.objIdx = make(map[string]int)
	budgets := [2]*chunker.Budget{chunker.NewBudget(cfg.EPS, 0), chunker.NewBudget(cfg.HTTPEPS, 0)}
	var daily *chunker.Budget
	if cfg.DailyBudget > 0 {
		daily = chunker.NewDailyBudget(cfg.DailyBudget)
	}

	for route := range r.lanes {
		maxBytes := cfg.MaxBatchBytes
		if backfill.Route(route) == backfill.RouteHTTP {
			maxBytes = cfg.MaxHTTPBytes
		}
		for range cfg.Lanes {
			r.lanes[route] = append(r.lanes[route], chunker.NewLane(budgets[route], chunker.Options{
				MaxEvents: cfg.BatchSize,
				MaxBytes:  maxBytes,
				Overhead:  cfg.Overhead,
				Linger:    cfg.Linger,
				SpillDir:  cfg.SpillDir,
				Daily:     daily,
			}))
		}
	}

	for route := range r.laneParked {
		r.laneParked[route] = make([]atomic.Int64, cfg.Lanes)
	}

	// hard governs senders and the checkpointer; readCtx governs reading and
	// ends on the soft signal or when any stage fails.
	// After the soft signal, requests in flight get ShutdownTimeout to
	// finish (a retry loop in an outage could otherwise hold the exit for
	// minutes); then they are cancelled and stay unsettled.
	sendCtx, stopSend := context.WithCancel(hard)
	defer stopSend()
	g, gctx := errgroup.WithContext(sendCtx)
	readCtx, stopRead := context.WithCancel(gctx)
	defer stopRead()
	go func() {
		select {
		case <-soft.Done():
			stopRead()
			t := time.NewTimer(cfg.ShutdownTimeout)
			defer t.Stop()
			select {
			case <-t.C:
				r.log.Warn("requests still in flight after the shutdown timeout; cancelling them (their events stay unsettled and are sent by the next run)", "timeout", cfg.ShutdownTimeout)
				stopSend()
			case <-gctx.Done():
			}
		case <-readCtx.Done():
		}
	}()

	jobs := make(chan *mapJob, cfg.MapWorkers*2)
	ordered := make(chan *mapJob, cfg.MapWorkers*4)
	var readErr error
	g.Go(func() error {
		defer close(jobs)
		defer close(ordered)
		readErr = r.readAll(readCtx, jobs, ordered)
		if readErr != nil && !errors.Is(readErr, context.Canceled) {
			return readErr
		}
		return nil
	})
	var mappers sync.WaitGroup
	for range cfg.MapWorkers {
		mappers.Go(func() {
			for j := range jobs {
				r.mapJob(j)
			}
		})
	}
	g.Go(func() error {
		defer func() {
			for _, ls := range r.lanes {
				for _, l := range ls {
					l.Close()
				}
			}
		}()
		return r.dispatch(readCtx, ordered)
	})
	for route, ls := range r.lanes {
		for i, l := range ls {
			g.Go(func() error { return r.lane(gctx, readCtx, backfill.Route(route), l, &r.laneParked[route][i]) })
		}
	}
	ckDone := make(chan struct{})
	var ckWG sync.WaitGroup
	ckWG.Go(func() { r.checkpointer(gctx, ckDone) })

	err := g.Wait()
	mappers.Wait()
	close(ckDone)
	ckWG.Wait()
	// The final save outlives the contexts (an abort too keeps what was
	// settled), but not by much.
	saveCtx, cancelSave := context.WithTimeout(context.WithoutCancel(hard), finalSaveTimeout)
	defer cancelSave()
	if serr := r.deps.Save(saveCtx); serr != nil {
		r.log.Error("save checkpoint", "err", serr)
		if err == nil {
			err = fmt.Errorf("save checkpoint: %w", serr)
		}
	}
	r.mu.Lock()
	objs := append([]ObjectStat(nil), r.objects...)
	r.mu.Unlock()

	left := 0
	for _, ls := range r.lanes {
		for _, l := range ls {
			left += l.Len()
			l.Release()
		}
	}
	r.mu.Lock()
	listed := r.listed
	r.mu.Unlock()
	switch {
	case err != nil:
		return objs, err
	case hard.Err() != nil || soft.Err() != nil && (!listed || left > 0):
		return objs, ErrInterrupted
	case left > 0:
		r.stats.Parked.Store(int64(left))
		return objs, fmt.Errorf("%w: %d events left for a later run", ErrParked, left)
	}
	return objs, nil
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

// readAll walks the objects in order, registering every record with the
// tracker and handing batches of records to the map workers (jobs) while
// recording their order (ordered).
func (r *run) readAll(ctx context.Context, jobs, ordered chan<- *mapJob) error {
	route := backfill.RouteBatch
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		obj, err := r.deps.Objects.Next(ctx)
		if err == io.EOF {
			r.mu.Lock()
			r.listed = true
			r.mu.Unlock()
			return nil
		}
		if err != nil {
			return fmt.Errorf("list sources: %w", err)
		}
		r.stats.ObjectsListed.Add(1)
		if obj.Route == backfill.RouteHTTP && route != backfill.RouteHTTP {
			// Tail partitions go after everything sent through /batch.
			route = backfill.RouteHTTP
			j := &mapJob{barrier: true, done: make(chan struct{})}
			close(j.done)
			if err := send(ctx, ordered, j); err != nil {
				return err
			}
		}
		if err := r.readObject(ctx, obj, jobs, ordered); err != nil {
			return err
		}
	}
}

func send[T any](ctx context.Context, ch chan<- T, v T) error {
	select {
	case ch <- v:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *run) readObject(ctx context.Context, obj Object, jobs, ordered chan<- *mapJob) error {
	tr := r.deps.Tracker
	if old, ok := tr.Fingerprint(obj.URL); ok && !r.cfg.Reprocess && old != "" && obj.Fingerprint != "" && old != obj.Fingerprint {
		err := fmt.Errorf("changed since it was checkpointed (was %s, now %s); left alone so old and new content are not mixed: rerun with --force to send it again from its first record (events already sent keep their insert_ids, so Amplitude drops them as duplicates within 7 days)", old, obj.Fingerprint)
		r.mu.Lock()
		r.objIdx[obj.URL] = len(r.objects)
		r.objects = append(r.objects, ObjectStat{URL: obj.URL, Route: obj.Route, Err: err.Error(), Started: time.Now(), Finished: time.Now()})
		r.mu.Unlock()
		tr.Fail(obj.URL, err)
		r.stats.ObjectsFailed.Add(1)
		r.stats.bytesDone.Add(obj.Size)
		r.log.Error("object changed since it was checkpointed", "object", obj.URL, "was", old, "now", obj.Fingerprint)
		if r.cfg.FailFast {
			return fmt.Errorf("%s: %w", obj.URL, err)
		}
		return nil
	}
	start := tr.Begin(obj.URL, obj.Fingerprint)
	r.mu.Lock()
	r.objIdx[obj.URL] = len(r.objects)
	r.objects = append(r.objects, ObjectStat{URL: obj.URL, Route: obj.Route, Skipped: start.Done, Changed: start.Changed, Started: time.Now()})
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
		r.log.Error("object failed", "object", obj.URL, "err", msg)
		if r.cfg.FailFast {
			if strings.HasPrefix(msg, obj.URL) { // reader errors name the object already
				return err
			}
			return fmt.Errorf("%s: %w", obj.URL, err)
		}
		return nil
	}
	dec, err := obj.Open(ctx, start.Resume)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fail(err)
	}
	defer dec.Close()
	if bc, ok := dec.(byteCounter); ok {
		r.stats.cur.Store(&bc)
	}

	var (
		job     = newMapJob()
		records int64
		total   int64 = -1
	)
	defer func() {
		if job != nil {
			releaseMapJob(job)
		}
	}()
	flush := func() error {
		if len(job.recs) == 0 {
			return nil
		}
		j := job
		job = newMapJob()
		if err := send(ctx, ordered, j); err != nil {
			return err
		}
		return send(ctx, jobs, j)
	}
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
			records++
			r.stats.Read.Add(1)
			if err := r.reject(recErr.Pos, deadletter.StageDecode, recErr.Reason, 0, "", recErr.Raw); err != nil {
				return err
			}
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			if ferr := flush(); ferr != nil {
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
		job.recs = append(job.recs, rec)
		if len(job.recs) == mapBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
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

// dispatch takes mapped batches in source order and pushes each event to
// its device lane, dead-lettering records that failed mapping.
func (r *run) dispatch(ctx context.Context, ordered <-chan *mapJob) error {
	route := backfill.RouteBatch
	devs, users := hotids.New(0), hotids.New(0)
	var counted int64
	defer func() {
		for _, top := range [][]hotids.IDCount{devs.Top(1), users.Top(1)} {
			if len(top) > 0 && top[0].Count > r.stats.Hottest.Count {
				r.stats.Hottest = top[0]
			}
		}
	}()
	for j := range ordered {
		select {
		case <-j.done:
		case <-ctx.Done():
			return nil
		}
		if j.barrier {
			if err := r.drain(ctx, route); err != nil {
				return nil
			}
			route = backfill.RouteHTTP
			r.stats.RouteHTTP.Store(true)
			r.log.Info("batch partitions settled; sending tail partitions through /2/httpapi")
			continue
		}
		for i := range j.recs {
			if err := j.errs[i]; err != nil {
				var (
					recErr *backfill.RecordError
					mapErr *mapping.Error
				)
				stage, reason, raw, insertID := deadletter.StageMap, err.Error(), j.recs[i].Data, ""
				if errors.As(err, &recErr) {
					reason = recErr.Reason
					stage = deadletter.StageValidate
					if len(recErr.Raw) > 0 {
						// For a re-fed dead-letter entry this is the inner
						// record, so entries never nest.
						raw = recErr.Raw
					}
				}
				if errors.As(err, &mapErr) {
					insertID = mapErr.InsertID
					if mapErr.Code == mapping.CodeInvalidJSON {
						// A syntax error the reader left to the mapper
						// (reader.Options.DeferJSONCheck).
						stage = deadletter.StageDecode
					}
				}
				if errors.Is(err, mapping.ErrFiltered) {
					stage = deadletter.StageFilter
				}
				if err := r.reject(j.recs[i].Pos, stage, reason, 0, insertID, raw); err != nil {
					return err
				}
				continue
			}
			ev := j.evs[i]
			if route == backfill.RouteBatch {
				// The hottest id decides the reported lower bound. Count
				// every event of the first hotExact, then sample one in
				// hotSample: two map operations per event are a real share
				// of the pipeline's CPU, and the bound needs no more.
				counted++
				if counted <= hotExact {
					devs.Add(ev.DeviceID)
					users.Add(ev.UserID)
				} else if counted%hotSample == 0 {
					devs.AddN(ev.DeviceID, hotSample)
					users.AddN(ev.UserID, hotSample)
				}
			}
			lanes := r.lanes[route]
			l := lanes[r.laneOf(&ev, len(lanes))]
			r.pending.Add(1)
			for !l.Push(ev, r.cfg.Now()) {
				if err := l.Err(); err != nil {
					return fmt.Errorf("lane: %w", err)
				}
				select {
				case <-l.Space():
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
					r.pending.Add(-1)
					return nil
				}
			}
		}
		releaseMapJob(j)
	}
	return nil
}

func (r *run) laneOf(ev *backfill.Event, n int) int {
	key := ev.DeviceID
	if key == "" {
		key = ev.UserID
	}
	return int(maphash.String(r.seed, key) % uint64(n))
}

// drain waits until every event pushed to route's lanes so far is settled
// or parked.
func (r *run) drain(ctx context.Context, route backfill.Route) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		var parked int64
		for i := range r.laneParked[route] {
			parked += r.laneParked[route][i].Load()
		}
		if r.pending.Load()-parked <= 0 {
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// reject dead-letters one record and settles it, atomically with respect to
// checkpoint snapshots.
func (r *run) reject(pos backfill.Position, stage deadletter.Stage, reason string, status int, insertID string, raw []byte) error {
	e := deadletter.NewEntry(pos, stage, reason, raw)
	e.Status, e.InsertID = status, insertID
	ok, err := r.deps.Tracker.SettleWith(pos, checkpoint.Rejected, func() error { return r.deps.DeadLetter.Write(e) })
	if err != nil {
		return fmt.Errorf("write dead-letter entry: %w", err)
	}
	if ok {
		r.stats.Rejected.Add(1)
	}
	return nil
}

// lane runs one device lane: pack, send, settle, until its input is closed
// and its queue is empty. hard ends it at once; after soft (readCtx) ends it
// finishes the request in flight and returns, leaving queued events
// unsettled for the next run.
func (r *run) lane(hard, readCtx context.Context, route backfill.Route, l *chunker.Lane, parked *atomic.Int64) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if hard.Err() != nil || readCtx.Err() != nil {
			return nil
		}
		b := l.Next(r.cfg.Now())
		if err := l.Err(); err != nil {
			return fmt.Errorf("lane: %w", err)
		}
		if len(b.Events) > 0 {
			if err := r.sendBatch(hard, route, l, b.Events); err != nil {
				return err
			}
			l.Recycle(b.Events)
			continue
		}
		if b.Queued == 0 && b.Closed {
			return nil
		}
		wait := b.Wait
		if b.Queued == 0 {
			wait = time.Hour
		}
		// Pacing and 429 pauses last at most a window (30 s); a longer wait
		// means every queued event belongs to a parked id.
		if b.Queued > 0 && wait >= time.Minute {
			parked.Store(int64(b.Queued))
			if b.Closed && !r.cfg.WaitParked {
				r.log.Warn("only events of ids over their daily quota are left in this lane; leaving them for a later run", "route", route.String(), "events", b.Queued)
				return nil
			}
		} else {
			parked.Store(0)
		}
		timer.Reset(wait)
		select {
		case <-l.Ready():
		case <-timer.C:
		case <-hard.Done():
			return nil
		case <-readCtx.Done():
			return nil
		}
	}
}

func (r *run) sendBatch(ctx context.Context, route backfill.Route, l *chunker.Lane, evs []backfill.Event) error {
	res, err := r.deps.Sender.Send(ctx, route, evs)
	st := res.Stats
	r.log.Debug("request settled", "route", route.String(), "events", len(evs), "accepted", len(res.Accepted),
		"rejected", len(res.Rejected), "throttled", len(res.Throttled), "parked", len(res.Parked), "requests", st.Requests, "retries", st.Retries)
	if route == backfill.RouteHTTP {
		r.stats.RequestsHTTPAPI.Add(int64(st.Requests))
	} else {
		r.stats.RequestsBatch.Add(int64(st.Requests))
	}
	var n5xx int
	for code, n := range st.Responses {
		if code >= 500 || code == 0 {
			n5xx += n
		}
	}
	r.stats.Responses429.Add(int64(st.Status429))
	r.stats.Responses5xx.Add(int64(n5xx))
	r.stats.Retries.Add(int64(st.Retries))
	r.stats.Splits.Add(int64(st.Splits))
	r.stats.BytesSent.Add(st.BytesSent)
	d := checkpoint.Counters{Responses429: int64(st.Status429), Responses5xx: int64(n5xx), Retries: int64(st.Retries), BytesSent: st.BytesSent}
	if route == backfill.RouteHTTP {
		d.RequestsHTTPAPI = int64(st.Requests)
	} else {
		d.RequestsBatch = int64(st.Requests)
	}
	r.deps.Tracker.AddCounters(d)

	if len(res.Accepted) > 0 {
		r.stats.Accepted.Add(int64(r.deps.Tracker.SettleEvents(evs, res.Accepted, checkpoint.Accepted)))
		r.pending.Add(-int64(len(res.Accepted)))
		// Accepted events are done with: their buffers go back to the
		// readers (see Mapper and Sender for why nothing else holds them).
		for _, i := range res.Accepted {
			backfill.ReleaseRecordData(evs[i].Raw)
			evs[i].Raw = nil
		}
	}
	for _, rej := range res.Rejected {
		ev := &evs[rej.Index]
		if werr := r.reject(ev.Pos, deadletter.StageServer, rej.Reason, rej.Status, ev.InsertID, ev.Raw); werr != nil {
			return werr
		}
		r.pending.Add(-1)
	}
	now := r.cfg.Now()
	if len(res.Throttled) > 0 {
		b := l.Budget()
		for _, id := range res.PauseDevices {
			b.Pause(chunker.Device, id, now.Add(res.PauseFor))
		}
		for _, id := range res.PauseUsers {
			b.Pause(chunker.User, id, now.Add(res.PauseFor))
		}
		r.stats.Throttled.Add(int64(len(res.PauseDevices) + len(res.PauseUsers)))
		again := make([]backfill.Event, 0, len(res.Throttled))
		for _, i := range res.Throttled {
			again = append(again, evs[i])
		}
		l.Requeue(again, now)
	}
	if len(res.Parked) > 0 {
		b := l.Budget()
		until := now.Add(r.cfg.ParkFor)
		for _, id := range res.QuotaDevices {
			b.Pause(chunker.Device, id, until)
			r.stats.park(checkpoint.ParkedID{Kind: "device", ID: id, Until: until})
		}
		for _, id := range res.QuotaUsers {
			b.Pause(chunker.User, id, until)
			r.stats.park(checkpoint.ParkedID{Kind: "user", ID: id, Until: until})
		}
		again := make([]backfill.Event, 0, len(res.Parked))
		for _, i := range res.Parked {
			again = append(again, evs[i])
		}
		r.stats.Parked.Add(int64(len(again)))
		r.log.Warn("ids over Amplitude's daily quota; their events are parked", "devices", len(res.QuotaDevices), "users", len(res.QuotaUsers), "events", len(again), "retry_after", r.cfg.ParkFor)
		l.Requeue(again, now)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil
		}
		return err
	}
	return nil
}

// checkpointer saves the tracker's state every CheckpointEvery until done.
func (r *run) checkpointer(ctx context.Context, done <-chan struct{}) {
	t := time.NewTicker(r.cfg.CheckpointEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := r.deps.Save(ctx); err != nil && ctx.Err() == nil {
				r.log.Error("save checkpoint", "err", err)
			}
		case <-done:
			return
		case <-ctx.Done():
			return
		}
	}
}
