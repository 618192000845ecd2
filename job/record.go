package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/reader"
)

// planPrefix names the route plan records at the root of a checkpoint
// location: plan-000001.json, plan-000002.json, one per generation.
const planPrefix = "plan-"

func planKey(gen int) string { return fmt.Sprintf("%s%06d.json", planPrefix, gen) }

// latestPlan returns the newest route plan recorded at the location, or nil.
func latestPlan(ctx context.Context, store *checkpoint.Store) (*RoutePlan, error) {
	keys, err := store.Records(ctx, planPrefix)
	if err != nil {
		return nil, err
	}
	best, bestKey := -1, ""
	for _, k := range keys {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(k, planPrefix), ".json"))
		if err == nil && n > best && strings.HasSuffix(k, ".json") {
			best, bestKey = n, k
		}
	}
	if best < 0 {
		return nil, nil
	}
	data, err := store.ReadRecord(ctx, bestKey)
	if err != nil {
		return nil, err
	}
	return decodePlan(bestKey, data)
}

func decodePlan(key string, data []byte) (*RoutePlan, error) {
	var rp RoutePlan
	if err := json.Unmarshal(data, &rp); err != nil {
		return nil, fmt.Errorf("%w: route plan %s: %v", checkpoint.ErrCorrupt, key, err)
	}
	if rp.Version > PlanVersion {
		return nil, fmt.Errorf("%w: route plan %s has version %d; this backfill reads up to %d", checkpoint.ErrVersion, key, rp.Version, PlanVersion)
	}
	return &rp, nil
}

// planFingerprint is the job fingerprint without the shard: one plan for
// every shard of the job.
func planFingerprint(cfg *Config) string {
	c := *cfg
	c.Shard = ""
	fp, _ := c.Fingerprint()
	return fp
}

// planDone reports whether every shard of an n-shard job completed plan
// generation gen, according to states (all the states at the location).
func planDone(gen int, states map[string]*checkpoint.State, n int) bool {
	for i := range n {
		name := ""
		if n > 1 {
			name = checkpoint.ShardName(i, n)
		}
		st := states[name]
		if st == nil || st.Plan != gen || !st.Complete {
			return false
		}
	}
	return true
}

// jobPlan returns the route plan this run follows: the newest recorded one
// while some shard has not completed it, else a new generation made from
// the listing now and recorded for the other shards and later runs. Of
// shards starting together, the first to record a generation wins and the
// others read it.
func jobPlan(ctx context.Context, store *checkpoint.Store, rd *reader.Reader, cfg *Config, shards int) (*PlanResult, error) {
	cur, gen, err := planInForce(ctx, store, cfg, shards)
	if err != nil || cur != nil {
		return cur, err
	}
	p, err := Plan(ctx, rd, cfg)
	if err != nil {
		return nil, err
	}
	p.Generation = gen
	data, err := json.Marshal(p.RoutePlan)
	if err != nil {
		return nil, err
	}
	switch err := store.Create(ctx, planKey(gen), data); {
	case err == nil:
		cfg.Logger.Info("recorded the job's route plan", "plan", gen, "objects", p.Objects, "tail_partitions", len(p.Tail), "tail_events", p.TailCount)
		return p, nil
	case errors.Is(err, checkpoint.ErrExist):
		// Another shard recorded this generation first: follow it.
		data, err := store.ReadRecord(ctx, planKey(gen))
		if err != nil {
			return nil, err
		}
		rp, err := decodePlan(planKey(gen), data)
		if err != nil {
			return nil, err
		}
		return usePlan(rp, cfg), nil
	default:
		return nil, err
	}
}

// planInForce returns the plan recorded in store that cfg's run must
// follow (one for this job not yet completed by all shards), or, when
// there is none, the generation a new plan takes.
func planInForce(ctx context.Context, store *checkpoint.Store, cfg *Config, shards int) (*PlanResult, int, error) {
	cur, err := latestPlan(ctx, store)
	if err != nil || cur == nil {
		return nil, 1, err
	}
	states, err := store.LoadAll(ctx)
	if err != nil {
		return nil, 0, err
	}
	if cur.Job == planFingerprint(cfg) && !planDone(cur.Generation, states, shards) {
		return usePlan(cur, cfg), 0, nil
	}
	// Completed, or made for another job (a resume with --force).
	return nil, cur.Generation + 1, nil
}

// usePlan returns a recorded plan for cfg, warning when cfg's route flags
// differ from those the plan was made with (the plan wins: it is the job's).
func usePlan(rp *RoutePlan, cfg *Config) *PlanResult {
	if rp.Route != cfg.Route || rp.Route == RouteAuto && (rp.TailEvents != cfg.TailEvents || rp.TailRatio != cfg.TailRatio) {
		cfg.Logger.Warn("following the job's recorded route plan, made with other route flags than this run's",
			"plan", rp.Generation, "route", rp.Route, "tail_events", rp.TailEvents, "tail_ratio", rp.TailRatio)
	}
	p := &PlanResult{RoutePlan: rp, Recorded: true, cfg: cfg}
	p.index()
	return p
}

// previewPlan is jobPlan for dry runs: it reads the plan recorded at
// cfg.Checkpoint (if any, and not completed) and records nothing.
func previewPlan(ctx context.Context, rd *reader.Reader, cfg *Config, shards int) (*PlanResult, error) {
	gen := 1
	store, err := checkpoint.Open(ctx, cfg.Checkpoint, checkpoint.Options{Logger: cfg.Logger})
	if err == nil {
		defer store.Close()
		cur, next, err := planInForce(ctx, store, cfg, shards)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if cur != nil {
			return cur, nil
		}
		gen = max(next, 1)
	}
	p, err := Plan(ctx, rd, cfg)
	if err != nil {
		return nil, err
	}
	p.Generation = gen
	return p, nil
}

// ReadPlan returns the newest route plan recorded at the checkpoint
// location loc (nil if none), for `backfill status`.
func ReadPlan(ctx context.Context, store *checkpoint.Store) (*RoutePlan, error) {
	return latestPlan(ctx, store)
}
