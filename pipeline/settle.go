package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/chunker"
	"github.com/backfillhq/backfill/deadletter"
	"github.com/backfillhq/backfill/uploader"
)

// reject dead-letters one record and settles it, atomically with respect to
// checkpoint snapshots.
func (r *run) reject(pos backfill.Position, stage deadletter.Stage, reason string, status int, insertID string, raw []byte) error {
	e := deadletter.NewEntry(pos, stage, reason, raw)
	e.Status, e.InsertID = status, insertID
	return r.write(pos, e)
}

// write writes e, the dead-letter entry of the record at pos, and settles
// the record, atomically with respect to checkpoint snapshots.
func (r *run) write(pos backfill.Position, e deadletter.Entry) error {
	ok, err := r.deps.Tracker.SettleWith(pos, checkpoint.Rejected, func() error { return r.deps.DeadLetter.Write(e) })
	if err != nil {
		return fmt.Errorf("write dead-letter entry: %w", err)
	}
	if ok {
		r.stats.Rejected.Add(1)
	}
	return nil
}

// SkippedError is a Map error that may say its record was excluded at the
// source (mapping.Error is one, for mapping.ErrSkipped): such a record is
// settled as skipped, neither sent nor dead-lettered.
type SkippedError interface {
	error
	Skipped() bool
}

// skipped reports whether err is a SkippedError that says so.
func skipped(err error) bool {
	var s SkippedError
	return errors.As(err, &s) && s.Skipped()
}

// skip settles a record excluded at the source (a SkippedError): the
// checkpoint's Filtered outcome, neither sent nor dead-lettered.
func (r *run) skip(pos backfill.Position) {
	if r.deps.Tracker.Settle(pos, checkpoint.Filtered) {
		r.stats.Skipped.Add(1)
	}
}

// settle applies the outcome of each event of one Send: accepted events
// are settled and their buffers recycled, rejected ones dead-lettered,
// with their source records read again under ctx (see rejectRefused), and
// throttled and parked ones requeued (behind the holds throttle put on
// their ids).
func (r *run) settle(ctx context.Context, l *chunker.Lane, evs []backfill.Event, res uploader.Result) error {
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
	if err := r.rejectRefused(ctx, evs, res.Rejected); err != nil {
		return err
	}
	r.pending.Add(-int64(len(res.Rejected)))
	// throttle has already paused or parked the ids these events wait for.
	now := r.cfg.Now()
	if len(res.Throttled) > 0 {
		again := make([]backfill.Event, 0, len(res.Throttled))
		for _, i := range res.Throttled {
			again = append(again, evs[i])
		}
		l.Requeue(again, now)
	}
	if len(res.Parked) > 0 {
		again := make([]backfill.Event, 0, len(res.Parked))
		for _, i := range res.Parked {
			again = append(again, evs[i])
		}
		r.stats.Parked.Add(int64(len(again)))
		r.log.Warn("ids over Amplitude's daily quota; their events are parked", "devices", len(res.QuotaDevices), "users", len(res.QuotaUsers), "events", len(again), "retry_after", r.cfg.ParkFor)
		l.Requeue(again, now)
	}
	return nil
}

// StagedError is a Map error that names the dead-letter stage that rejected
// its record and the insert_id its dead-letter entry keeps (mapping.Error
// is one). The pipeline dead-letters what Map returns without knowing the
// mapper's codes.
type StagedError interface {
	error
	Rejection() (stage deadletter.Stage, insertID string)
}

// rejection says how a Map error is dead-lettered: a StagedError names its
// stage; another *backfill.RecordError is a validation failure; anything
// else a mapping failure with the record's data as it was read.
func rejection(err error, data []byte) (stage deadletter.Stage, reason string, raw []byte, insertID string) {
	stage, reason, raw = deadletter.StageMap, err.Error(), data
	var recErr *backfill.RecordError
	if errors.As(err, &recErr) {
		reason = recErr.Reason
		stage = deadletter.StageValidate
		if len(recErr.Raw) > 0 {
			// For a re-fed dead-letter entry this is the inner record, so
			// entries never nest.
			raw = recErr.Raw
		}
	}
	var staged StagedError
	if errors.As(err, &staged) {
		stage, insertID = staged.Rejection()
	}
	return stage, reason, raw, insertID
}
