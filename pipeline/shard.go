package pipeline

import (
	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
)

// owns reports whether this shard sends (or dead-letters) the record at pos
// mapped to ev, err.
func (r *run) owns(ev *backfill.Event, err error, pos backfill.Position) bool {
	if err != nil {
		return r.ownsPosition(pos)
	}
	return backfill.ShardOf(ev.Key(), r.cfg.Shards) == r.cfg.Shard
}

func (r *run) ownsPosition(pos backfill.Position) bool {
	return r.cfg.Shards <= 1 || backfill.ShardOfPosition(pos, r.cfg.Shards) == r.cfg.Shard
}

// settleForeign settles the records of j at idx, which belong to other
// shards, as checkpoint.Foreign: read here, sent by their owner.
func (r *run) settleForeign(j *mapJob, idx []int) {
	if len(idx) == 0 {
		return
	}
	evs := r.foreignEvs[:0]
	for _, i := range idx {
		evs = append(evs, backfill.Event{Pos: j.recs[i].Pos})
		if j.errs[i] == nil {
			// The event's buffer is the record's (see Mapper), as for an
			// accepted event.
			backfill.ReleaseRecordData(j.evs[i].Raw)
			j.evs[i].Raw = nil
		}
	}
	all := r.foreignIdx[:0]
	for i := range evs {
		all = append(all, i)
	}
	r.deps.Tracker.SettleEvents(evs, all, checkpoint.Foreign)
	r.stats.Read.Add(-int64(len(idx)))
	r.stats.Foreign.Add(int64(len(idx)))
	clear(evs)
	r.foreignEvs, r.foreignIdx = evs[:0], all[:0]
}
