package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/chunker"
)

// lane runs one device lane: pack, send, settle, until its input is closed
// and its queue is empty. hard ends it at once; after soft (readCtx) ends it
// finishes the request in flight and returns, leaving queued events
// unsettled for the next run.
func (r *run) lane(hard, readCtx context.Context, route backfill.Route, id int, l *chunker.Lane, parked *atomic.Int64) error {
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
			if err := r.sendBatch(hard, route, id, l, b.Events); err != nil {
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
		if b.Queued > 0 && b.Parked {
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

// sendBatch sends one request's events and applies the result: counters
// first, then each event's outcome (see settle). With a journal the request
// is recorded and made durable first (with the previous request's
// acknowledgements), and its acknowledgements recorded once settled. The
// lane's budget counts the request's spends from when Send returned, when
// the server has counted them (see chunker.Lane.Done): the commit and
// Send's retries lie between the spend and the server.
func (r *run) sendBatch(ctx context.Context, route backfill.Route, lane int, l *chunker.Lane, evs []backfill.Event) error {
	if err := r.journalSent(ctx, lane, evs); err != nil {
		l.Done(r.cfg.Now())
		r.journalAcked(lane, nil) // aborted before sending: left unsettled for the next run
		return nil
	}
	res, err := r.senders[route].Send(ctx, route, evs)
	l.Done(r.cfg.Now())
	st := res.Stats
	r.log.Debug("request settled", "route", route.String(), "events", len(evs), "accepted", len(res.Accepted),
		"rejected", len(res.Rejected), "throttled", len(res.Throttled), "parked", len(res.Parked), "requests", st.Requests, "retries", st.Retries)
	r.count(route, st)
	werr := r.settle(ctx, l, evs, res)
	r.journalAcked(lane, res.Accepted) // after the tracker settled them
	if werr != nil {
		return werr
	}
	if err != nil {
		// Only the run's own end is a quiet stop: a client timeout also
		// unwraps to context.DeadlineExceeded, and retries exhausted on
		// timeouts (a server that never answers) must fail the run.
		if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			return nil
		}
		return err
	}
	return nil
}
