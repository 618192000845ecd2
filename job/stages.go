package job

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/backfillhq/backfill/amplitude"
	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/mapping"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/reader"
)

// stages are the read side of a job: the reader, the mapper and the shard.
type stages struct {
	mapper        *mapping.Mapper
	rd            *reader.Reader
	shard, shards int
}

// openStages builds the read side of cfg (validated); close st.rd after use.
func (c *Config) openStages() (*stages, error) {
	si, sn, err := ParseShard(c.Shard)
	if err != nil {
		return nil, err
	}
	m, err := newMapper(c)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	rd, err := reader.New(readerOptions(c))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	return &stages{mapper: m, rd: rd, shard: si, shards: sn}, nil
}

// validateNoSend validates a configuration that sends nothing (plan,
// validate, dry runs), where no API key is needed.
func (c *Config) validateNoSend() error {
	if c.APIKey == "" {
		c.APIKey = "unused" // nothing is sent
	}
	return c.Validate()
}

func readerOptions(cfg *Config) reader.Options {
	format, _ := reader.ParseFormat(cfg.Format) // checked by Validate
	o := reader.Options{
		Format:      format,
		Delimiter:   cfg.Delimiter,
		ColumnTypes: cfg.ColumnTypes,
		Columns:     cfg.Columns,
		// The mapper parses every record: one scan instead of two.
		DeferJSONCheck: true,
	}
	if cfg.OpenBucket != nil {
		o.OpenBucket = cfg.OpenBucket
	}
	return o
}

// mapping.Error tells the pipeline how to dead-letter a record.
var _ pipeline.StagedError = (*mapping.Error)(nil)

// mapping.Error tells the pipeline which records the source excluded.
var _ pipeline.SkippedError = (*mapping.Error)(nil)

func newMapper(cfg *Config) (*mapping.Mapper, error) {
	opts := mapping.Options{
		Preset:                 cfg.Preset,
		SkipUserPropertiesSync: cfg.SkipUserPropertiesSync,
		MinIDLength:            cfg.MinIDLength,
		IncludeExcluded:        cfg.IncludeExcluded,
		// Every caller here drops a record once it is mapped.
		OwnRecords: true,
	}
	if cfg.MappingFile != "" {
		spec, err := mapping.LoadSpec(cfg.MappingFile)
		if err != nil {
			return nil, err
		}
		opts.Spec = spec
	}
	return mapping.New(opts)
}

// pace is how a shard paces each id it owns: the configured rates, zero
// taking Amplitude's defaults. A device belongs to one shard
// (backfill.ShardOf), so every shard paces its ids at the full rate, as one
// process does. Run, the report's lower bound and the analysis all read it
// from here.
type pace struct{ eps, httpEPS, daily int }

func (c *Config) pace() pace {
	return pace{
		eps:     amplitude.ShardRate(c.EPS, amplitude.DefaultEPS, 1),
		httpEPS: amplitude.ShardRate(c.HTTPEPS, amplitude.DefaultHTTPEPS, 1),
		daily:   c.DailyBudget,
	}
}

// ParseShard parses "i/n" (0-based i). "" means unsharded (0, 1).
func ParseShard(s string) (int, int, error) {
	if s == "" {
		return 0, 1, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("%w: --shard must be INDEX/COUNT with 0 <= INDEX < COUNT, not %q", ErrUsage, s)
	}
	return i, n, nil
}

// lockStore takes the store's lock. While another run holds it, it waits
// up to cfg.LockWait (polling, until soft ends) for the lock to be released
// or to go stale after cfg.LockTTL without a heartbeat.
func lockStore(hard, soft context.Context, store *checkpoint.Store, cfg *Config) (*checkpoint.Lock, error) {
	opts := checkpoint.LockOptions{Force: cfg.Force, TTL: cfg.LockTTL}
	deadline := time.Now().Add(cfg.LockWait)
	poll := min(max(cmp.Or(cfg.LockTTL, checkpoint.DefaultLockTTL)/8, 250*time.Millisecond), 5*time.Second)
	for waited := false; ; waited = true {
		lock, err := store.Lock(hard, opts)
		left := time.Until(deadline)
		if err == nil || !errors.Is(err, checkpoint.ErrLocked) || left <= 0 {
			if err == nil && waited {
				cfg.Logger.Info("got the checkpoint lock")
			}
			return lock, err
		}
		if !waited {
			cfg.Logger.Info("waiting for the checkpoint lock to be released or go stale", "wait", cfg.LockWait, "err", err)
		}
		t := time.NewTimer(min(poll, left))
		select {
		case <-soft.Done():
			t.Stop()
			return nil, fmt.Errorf("wait for checkpoint lock: %w", err)
		case <-t.C:
		}
	}
}
