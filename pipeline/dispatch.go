package pipeline

import (
	"context"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/hotids"
)

// dispatch takes mapped batches in source order and pushes each event to
// its device lane, dead-lettering records that failed mapping.
func (r *run) dispatch(ctx context.Context, ordered <-chan *mapJob) error {
	route := backfill.RouteBatch
	devs, users := hotids.New(0), hotids.New(0)
	var counted int64
	var dup *dupes
	if r.cfg.DupeSlots >= 0 {
		dup = newDupes(r.cfg.DupeSlots)
	}
	// profiles (profile records of the spec, such as Mixpanel People) read
	// before the first other event are settled before it is sent.
	profiles, profilesDone := false, false
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
		foreign := r.foreign[:0]
		for i := range j.recs {
			if r.cfg.Shards > 1 && !r.owns(&j.evs[i], j.errs[i], j.recs[i].Pos) {
				foreign = append(foreign, i)
				continue
			}
			if err := j.errs[i]; err != nil && skipped(err) {
				// Excluded at the source: its own outcome, not a rejection.
				r.skip(j.recs[i].Pos)
				continue
			}
			if err := j.errs[i]; err != nil {
				stage, reason, raw, insertID := rejection(err, j.recs[i].Data)
				if err := r.reject(j.recs[i].Pos, stage, reason, 0, insertID, raw); err != nil {
					return err
				}
				continue
			}
			ev := j.evs[i]
			if ev.Profile {
				profiles = true
			} else if profiles && !profilesDone {
				profilesDone = true
				r.log.Info("profiles read so far are sent before the events that follow them; waiting for them to settle")
				if err := r.drain(ctx, route); err != nil {
					return nil
				}
			}
			if dup != nil && dup.check(&ev) {
				r.duplicate(&ev)
			}
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
		r.settleForeign(j, foreign)
		r.foreign = foreign[:0]
		releaseMapJob(j)
	}
	return nil
}

func (r *run) laneOf(ev *backfill.Event, n int) int {
	return int(maphash.String(r.seed, ev.Key()) % uint64(n))
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
