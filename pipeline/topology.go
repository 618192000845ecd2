package pipeline

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/amplitude"
	"github.com/backfillhq/backfill/chunker"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

type run struct {
	cfg   Config
	deps  Deps
	stats *Stats
	log   *slog.Logger

	seed    maphash.Seed
	lanes   [2][]*chunker.Lane // by route
	senders [2]Sender          // by route: deps.Sender behind the route's throttle

	// Scratch space of dispatch for the records of other shards.
	foreign    []int
	foreignEvs []backfill.Event
	foreignIdx []int

	mu      sync.Mutex
	objects []ObjectStat
	objIdx  map[string]int
	// sources are the objects this run reads, by URL: refused events'
	// records are read again from them (rejectRefused). The checkpointer
	// drops those whose records are all settled (forgetDone).
	sources map[string]Object

	listed  bool         // the listing was read to its end; under mu
	pending atomic.Int64 // events pushed to lanes and not yet settled
	// laneParked[route][i] is how many events lane i holds back only for
	// ids parked over their daily quota, as last seen by its goroutine.
	laneParked [2][]atomic.Int64
}

func (r *run) run(hard, soft context.Context) ([]ObjectStat, error) {
	cfg := r.cfg
	r.seed = maphash.MakeSeed()
	r.objIdx = make(map[string]int)
	r.sources = make(map[string]Object)
	budgets := [2]*chunker.Budget{chunker.NewBudget(cfg.EPS, 0), chunker.NewBudget(cfg.HTTPEPS, 0)}
	r.seedBudgets(budgets)
	var daily *chunker.Budget
	if cfg.DailyBudget > 0 {
		daily = chunker.NewDailyBudget(cfg.DailyBudget)
	}

	for route := range r.senders {
		r.senders[route] = throttle{Sender: r.deps.Sender, budget: budgets[route], now: cfg.Now, parkFor: cfg.ParkFor, stats: r.stats}
	}
	for route := range r.lanes {
		maxBytes, maxPerID := cfg.MaxBatchBytes, 0
		if backfill.Route(route) == backfill.RouteHTTP {
			maxBytes, maxPerID = cfg.MaxHTTPBytes, amplitude.HTTPWindowEvents
		}
		for range cfg.Lanes {
			r.lanes[route] = append(r.lanes[route], chunker.NewLane(budgets[route], chunker.Options{
				MaxEvents: cfg.BatchSize,
				MaxBytes:  maxBytes,
				Overhead:  cfg.Overhead,
				Linger:    cfg.Linger,
				SpillDir:  cfg.SpillDir,
				Daily:     daily,
				MaxPerID:  maxPerID,
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
	// The opener lists and opens objects ahead of the reader (see opened).
	openCtx, stopOpen := context.WithCancel(readCtx)
	defer stopOpen()
	openSem := semaphore.NewWeighted(openAheadBytes)
	prepared := make(chan *opened, openAhead)
	g.Go(func() error {
		defer close(prepared)
		r.openAll(openCtx, openSem, prepared)
		return nil
	})
	g.Go(func() error {
		defer close(jobs)
		defer close(ordered)
		readErr = r.readAll(readCtx, prepared, jobs, ordered)
		stopOpen()
		for p := range prepared { // opened ahead, not read
			p.close()
		}
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
			id := route*len(ls) + i // the lane's number in the journal
			g.Go(func() error { return r.lane(gctx, readCtx, backfill.Route(route), id, l, &r.laneParked[route][i]) })
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
		if err == nil { // returned, so not logged
			err = fmt.Errorf("save checkpoint: %w", serr)
		} else {
			r.log.Error("save checkpoint", "err", serr)
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

func send[T any](ctx context.Context, ch chan<- T, v T) error {
	select {
	case ch <- v:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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
			r.forgetDone()
		case <-done:
			return
		case <-ctx.Done():
			return
		}
	}
}
