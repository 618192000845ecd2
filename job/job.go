// Package job runs one backfill job end to end: it opens the checkpoint
// store and takes its lock, checks the job fingerprint, opens the
// dead-letter file where the last checkpoint left it, lists the sources,
// decides each object's route, runs the pipeline and produces the report.
//
// It is the layer between the command line (flags, signals, exit codes,
// progress display) and the stages (reader, mapping, chunker, uploader,
// checkpoint, deadletter), which it wires together without knowing their
// internals.
package job

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/amplitude"
	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/deadletter"
	"github.com/backfillhq/backfill/internal/redact"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/reader"
	"github.com/backfillhq/backfill/uploader"
)

// Defaults for Config.
const (
	DefaultCheckpoint = ".backfill"
	DeadLetterName    = "dead-letter.jsonl"
	ReportName        = "report.json"
	DefaultTailEvents = 10000
)

// Route modes for Config.Route.
const (
	RouteAuto  = "auto"
	RouteBatch = "batch"
	RouteHTTP  = "http"
)

var (
	// ErrUsage marks configuration errors (exit code 2).
	ErrUsage = errors.New("usage")
	// ErrRejected means the job completed but some records were
	// dead-lettered.
	ErrRejected = backfill.OutcomeError(backfill.Rejected, "completed with rejected records")
	// ErrObjects means some source objects could not be read; the others
	// were processed.
	ErrObjects = errors.New("some objects failed")
)

// Config is everything a job needs. Zero fields take defaults.
type Config struct {
	Sources []string

	// Reading.
	Format      string
	Delimiter   rune
	ColumnTypes map[string]string
	Columns     []string
	OpenBucket  func(ctx context.Context, url string) (*blob.Bucket, error)

	// Mapping.
	Preset                 string
	MappingFile            string
	SkipUserPropertiesSync bool
	MinIDLength            int
	// IncludeExcluded sends records the source excluded from Amplitude
	// (mapping.Options.IncludeExcluded) instead of skipping them.
	IncludeExcluded bool

	// Sending.
	Endpoint      string
	APIKey        string
	HTTPClient    *http.Client
	Gzip          bool
	MaxAttempts   int
	ThrottlePause time.Duration
	Route         string
	TailEvents    int
	// TailRatio is the relative tail rule: a trailing partition goes
	// through /2/httpapi only if its stored size is at most TailRatio × the
	// median size of the partitions before the tail. Default
	// DefaultTailRatio.
	TailRatio float64

	// Pacing and concurrency.
	Lanes       int
	EPS         int
	HTTPEPS     int
	DailyBudget int
	BatchSize   int
	Linger      time.Duration
	MapWorkers  int
	WaitParked  bool
	// MaxEPS and MaxRPS are the project-wide ceilings of the whole job
	// (events/s and requests/s on each route, shared by all lanes; a shard
	// takes 1/COUNT); 0 means none until Amplitude pushes back.
	MaxEPS, MaxRPS float64

	// State and output.
	Checkpoint      string
	CheckpointEvery time.Duration
	ShutdownTimeout time.Duration
	Shard           string // "i/n" or ""
	DeadLetter      string
	ReportFile      string
	Force           bool
	FailFast        bool
	// LockTTL is how long a bucket checkpoint's lock stays valid without a
	// heartbeat (one per checkpoint save); an older lock is stale and
	// taken over. Default checkpoint.DefaultLockTTL.
	LockTTL time.Duration
	// LockWait is how long to wait for a lock held by another run to be
	// released or to go stale before failing with checkpoint.ErrLocked
	// (a replacement Kubernetes pod waits out the pod it replaces). Zero
	// fails at once.
	LockWait time.Duration

	Logger *slog.Logger
	// Stats, when set, receives live counters (for progress displays).
	Stats *pipeline.Stats
	// OnStart is called once the total input size is known (for progress
	// bars); it may be nil.
	OnStart func(objects int, bytes int64)
	// OnCeilings, when set, receives the run's project ceilings before
	// anything is sent (for progress displays).
	OnCeilings func(Ceilings)
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if len(c.Sources) == 0 {
		return fmt.Errorf("%w: no SOURCE given", ErrUsage)
	}
	if c.APIKey == "" {
		return fmt.Errorf("%w: no API key: set AMPLITUDE_API_KEY or --api-key", ErrUsage)
	}
	if c.Endpoint == "" {
		c.Endpoint = amplitude.USEndpoint
	}
	if c.Checkpoint == "" {
		c.Checkpoint = DefaultCheckpoint
	}
	if c.DeadLetter == "" {
		if isLocal(c.Checkpoint) {
			c.DeadLetter = filepath.Join(localPath(c.Checkpoint), DeadLetterName)
		} else {
			c.DeadLetter = DeadLetterName
		}
	}
	if c.ReportFile == "" && isLocal(c.Checkpoint) {
		c.ReportFile = filepath.Join(localPath(c.Checkpoint), ReportName)
	}
	if _, err := reader.ParseFormat(c.Format); err != nil {
		return fmt.Errorf("%w: --format must be jsonl, json, csv, tsv or parquet: %v", ErrUsage, err)
	}
	switch c.Route {
	case "":
		c.Route = RouteAuto
	case RouteAuto, RouteBatch, RouteHTTP:
	default:
		return fmt.Errorf("%w: --route must be auto, batch or http, not %q", ErrUsage, c.Route)
	}
	if c.TailEvents == 0 {
		c.TailEvents = DefaultTailEvents
	}
	if c.TailRatio < 0 {
		return fmt.Errorf("%w: --tail-ratio must be positive, not %g", ErrUsage, c.TailRatio)
	}
	if c.TailRatio == 0 {
		c.TailRatio = DefaultTailRatio
	}
	if c.EPS > amplitude.BatchEPS {
		return fmt.Errorf("%w: --eps %d is above Amplitude's documented limit of %d events/s per device and user", ErrUsage, c.EPS, amplitude.BatchEPS)
	}
	if c.HTTPEPS > amplitude.HTTPEPS {
		return fmt.Errorf("%w: --http-eps %d is above Amplitude's documented HTTP V2 limit of %d events/s per device and user", ErrUsage, c.HTTPEPS, amplitude.HTTPEPS)
	}
	if c.BatchSize > amplitude.MaxEvents {
		return fmt.Errorf("%w: --batch-size %d is above Amplitude's limit of %d events per request", ErrUsage, c.BatchSize, amplitude.MaxEvents)
	}
	if c.MaxEPS < 0 || c.MaxRPS < 0 || c.MaxEPS != c.MaxEPS || c.MaxRPS != c.MaxRPS {
		return fmt.Errorf("%w: --max-eps and --max-rps must be positive (or 0 for none)", ErrUsage)
	}
	if c.LockTTL < 0 || c.LockWait < 0 {
		return fmt.Errorf("%w: --lock-ttl and --lock-wait must not be negative", ErrUsage)
	}
	if every := cmp.Or(c.CheckpointEvery, pipeline.DefaultCheckpointEvery); c.LockTTL > 0 && c.LockTTL < 3*every {
		// The heartbeat is the checkpoint save: a TTL of fewer than three
		// saves lets a slow save make a live run's lock look stale.
		return fmt.Errorf("%w: --lock-ttl %s must be at least 3 × --checkpoint-every (%s)", ErrUsage, c.LockTTL, every)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

func isLocal(loc string) bool {
	return !strings.Contains(loc, "://") || strings.HasPrefix(loc, "file://")
}

func localPath(loc string) string {
	return strings.TrimPrefix(loc, "file://")
}

// Fingerprint returns the job fingerprint and its human description: the
// sources and every option that changes the events sent. Pacing, lanes and
// endpoints are left out: changing them between resumes is safe.
func (c *Config) Fingerprint() (string, map[string]string) {
	desc := map[string]string{
		"sources":                   strings.Join(c.Sources, " "),
		"format":                    c.Format,
		"preset":                    c.Preset,
		"mapping":                   c.MappingFile,
		"skip_user_properties_sync": strconv.FormatBool(c.SkipUserPropertiesSync),
		"min_id_length":             strconv.Itoa(c.MinIDLength),
		"shard":                     c.Shard,
	}
	if c.IncludeExcluded {
		// Only when set, so jobs checkpointed before the option existed
		// keep their fingerprint.
		desc["include_excluded"] = "true"
	}
	if len(c.ColumnTypes) > 0 {
		var kv []string
		for k, v := range c.ColumnTypes {
			kv = append(kv, k+":"+v)
		}
		sort.Strings(kv)
		desc["csv_types"] = strings.Join(kv, ",")
	}
	if len(c.Columns) > 0 {
		desc["columns"] = strings.Join(c.Columns, ",")
	}
	if c.MappingFile != "" {
		if data, err := os.ReadFile(c.MappingFile); err == nil {
			desc["mapping_sha256"] = checkpoint.Fingerprint(string(data))
		}
	}
	keys := make([]string, 0, len(desc))
	for k := range desc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+desc[k])
	}
	fp := checkpoint.Fingerprint(parts...)
	// The description is stored in the checkpoint and shown in mismatch
	// errors: no URL password or credential parameter goes there (the
	// fingerprint above is a hash and stays as it was).
	srcs := make([]string, len(c.Sources))
	for i, s := range c.Sources {
		srcs[i] = redact.URL(s)
	}
	desc["sources"] = strings.Join(srcs, " ")
	return fp, desc
}

// Run executes the job. soft stops reading (first Ctrl-C), hard aborts.
// The report is returned even with an error whenever the job got far enough
// to have one.
func Run(hard, soft context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	started := time.Now()

	st, err := cfg.openStages()
	if err != nil {
		return nil, err
	}
	defer st.rd.Close()
	mapper, rd, shardIdx, shardCount := st.mapper, st.rd, st.shard, st.shards
	storeOpts := checkpoint.Options{Logger: log}
	if shardCount > 1 {
		storeOpts.Name = checkpoint.ShardName(shardIdx, shardCount)
	}
	store, err := checkpoint.Open(hard, cfg.Checkpoint, storeOpts)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	lock, err := lockStore(hard, soft, store, &cfg)
	if err != nil {
		return nil, err
	}
	defer lock.Release(context.WithoutCancel(hard))

	state, err := store.Load(hard)
	fresh := errors.Is(err, checkpoint.ErrNoCheckpoint)
	if err != nil && !fresh {
		return nil, fmt.Errorf("load checkpoint: %w", err)
	}
	jobFP, jobDesc := cfg.Fingerprint()
	if shardCount > 1 && !fresh && state.Split != checkpoint.SplitDevice {
		return nil, fmt.Errorf("%w: %s was written by a backfill that split shards by object (each shard sent its own objects, so devices were sent by several shards at once); it cannot be resumed by the split by device of this version. Finish the job with the version that started it, or start it again with a new --checkpoint location (events already accepted keep their insert_ids, and Amplitude drops the re-sends within 7 days)", ErrUsage, store)
	}
	if fresh {
		state = &checkpoint.State{Started: started}
	} else if err := checkpoint.CheckJob(state, jobFP, jobDesc); err != nil {
		if !cfg.Force {
			return nil, fmt.Errorf("%w (or use a new --checkpoint)", err)
		}
		log.Warn("resuming a checkpoint written with another configuration (--force)", "err", err)
	}
	plan, err := jobPlan(hard, store, rd, &cfg, shardCount)
	if err != nil {
		return nil, fmt.Errorf("route plan: %w", err)
	}
	state.Job, state.JobDesc, state.Shard = jobFP, jobDesc, cfg.Shard
	state.Plan = plan.Generation
	if shardCount > 1 {
		state.Split = checkpoint.SplitDevice
	}
	state.DeadLetterFile = cfg.DeadLetter
	state.RunCount++

	truncate := state.DeadLetterSize
	if fresh {
		if fi, err := os.Stat(cfg.DeadLetter); err == nil && fi.Size() > 0 && !cfg.Force {
			return nil, fmt.Errorf("%w: dead-letter file %s already holds %d bytes that no checkpoint accounts for; move it away or pass --force to truncate it", ErrUsage, cfg.DeadLetter, fi.Size())
		}
		truncate = 0
	} else if _, err := os.Stat(cfg.DeadLetter); truncate > 0 && !isLocal(cfg.Checkpoint) && errors.Is(err, fs.ErrNotExist) {
		// A bucket checkpoint outlives the machine that wrote it: a
		// replacement pod or another host resumes it without the local
		// dead-letter file of the earlier runs. Their rejected records
		// stay counted in the checkpoint; new ones go to a new file.
		log.Warn("the dead-letter file of earlier runs is not on this machine; starting a new one (the records rejected earlier are only in the earlier file)",
			"file", cfg.DeadLetter, "earlier_bytes", truncate)
		truncate = 0
	}
	dl, err := deadletter.Open(cfg.DeadLetter, truncate)
	if err != nil {
		return nil, err
	}
	defer dl.Close()

	ceilings, err := newCeilings(&cfg, shardCount)
	if err != nil {
		return nil, err
	}
	if cfg.OnCeilings != nil {
		cfg.OnCeilings(ceilings)
	}
	client, err := uploader.New(uploader.Options{
		Endpoint:      cfg.Endpoint,
		APIKey:        cfg.APIKey,
		MinIDLength:   cfg.MinIDLength,
		HTTPClient:    cfg.HTTPClient,
		Gzip:          cfg.Gzip,
		MaxAttempts:   cfg.MaxAttempts,
		ThrottlePause: cfg.ThrottlePause,
		Logger:        log,
		Ceilings:      ceilings,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	defer client.CloseIdleConnections()

	// A lost lock means another run took this checkpoint over (it saw ours
	// stale): stop sending at once, and save nothing over its progress.
	runCtx, abort := context.WithCancelCause(hard)
	defer abort(nil)

	tracker := checkpoint.NewTracker(state)
	// The journal of the runs since the state was saved: what they had
	// acknowledged, sent and spent of the per-id budgets.
	journal, replayed, err := store.OpenJournal(hard, state, tracker, checkpoint.JournalOptions{Logger: log})
	if err != nil {
		return nil, err
	}
	defer journal.Close()
	state.RunCount += replayed.Runs // killed before their first save
	if state.FellBack {
		logFallback(log, state, replayed)
	} else if replayed.Generations > 0 {
		log.Info("resuming from the checkpoint and its journal", "acknowledged_since_save", replayed.Settled,
			"in_flight_at_crash", replayed.Crashed, "resend", replayed.Resend, "journal_generations", replayed.Generations)
	}
	resume := pipeline.Resume{Recent: state.Recent, Active: state.Updated}
	if replayed.Recent != nil {
		resume.Recent = replayed.Recent
	}
	if replayed.LastActive.After(resume.Active) {
		resume.Active = replayed.LastActive
	}
	if fresh {
		resume.Active = time.Time{}
	}
	stats := cfg.Stats
	if stats == nil {
		stats = new(pipeline.Stats)
	}
	save := func(ctx context.Context) error {
		st := *state
		tracker.Fill(&st, func(s *checkpoint.State) {
			s.DeadLetterSize = dl.Size()
			journal.Compact(s)
		})
		st.Parked = stats.ParkedIDs(time.Now())
		if _, err := dl.Sync(); err != nil {
			return fmt.Errorf("sync dead-letter file: %w", err)
		}
		st.Updated = time.Now()
		if err := lock.Refresh(ctx); err != nil {
			if errors.Is(err, checkpoint.ErrLockLost) {
				abort(err)
			}
			return err
		}
		if err := store.Save(ctx, &st); err != nil {
			return err
		}
		if err := journal.Saved(ctx, &st); err != nil {
			log.Warn("compact the checkpoint journal", "err", err)
		}
		return nil
	}

	if cfg.OnStart != nil {
		cfg.OnStart(plan.Objects, plan.Bytes)
	}
	// A fresh job saves its empty state before anything can reach the
	// dead-letter file: a crash before the first periodic save then resumes
	// from it (truncating the file) instead of refusing a dead-letter file
	// that no checkpoint accounts for.
	if fresh {
		if err := save(hard); err != nil {
			return nil, fmt.Errorf("save checkpoint: %w", err)
		}
	}

	pc := cfg.pace()
	if shardCount > 1 {
		log.Info("sharded run: sending the events of the devices this shard owns, at the full pace per id", "shard", cfg.Shard, "plan", plan.Generation)
	}
	objs, runErr := pipeline.Run(runCtx, soft, pipeline.Config{
		Lanes:           cfg.Lanes,
		EPS:             pc.eps,
		HTTPEPS:         pc.httpEPS,
		DailyBudget:     pc.daily,
		Shard:           shardIdx,
		Shards:          shardCount,
		BatchSize:       cfg.BatchSize,
		Overhead:        client.Overhead(),
		Linger:          cfg.Linger,
		MapWorkers:      cfg.MapWorkers,
		WaitParked:      cfg.WaitParked,
		FailFast:        cfg.FailFast,
		Reprocess:       cfg.Force, // --force re-reads objects changed since the checkpoint
		Logger:          log,
		CheckpointEvery: cfg.CheckpointEvery,
		ShutdownTimeout: cfg.ShutdownTimeout,
	}, pipeline.Deps{
		Objects:    plan.Lister(hard, rd),
		Mapper:     mapper,
		Sender:     client,
		Tracker:    tracker,
		DeadLetter: dl,
		Save:       save,
		Journal:    journal,
		Resume:     resume,
	}, stats)
	if cause := context.Cause(runCtx); errors.Is(cause, checkpoint.ErrLockLost) {
		runErr = cause
	} else if hard.Err() == nil {
		// Save the final state a second time, so that the previous state
		// (the fallback should the newest ever be unreadable) is the final
		// one too, not a periodic save up to --checkpoint-every older: a
		// corrupt checkpoint of a finished job then re-sends nothing.
		if err := save(hard); err != nil {
			log.Error("save checkpoint", "err", err)
		}
	}

	final := *state
	tracker.Fill(&final, nil)
	final.Counters.EventsResent += journal.Resent()
	rep := buildReport(&cfg, &final, objs, stats, plan, started, runErr)
	rep.addCeilings(&cfg, ceilings, shardCount)
	if cfg.ReportFile != "" {
		if err := rep.WriteFile(cfg.ReportFile); err != nil {
			log.Error("write report", "file", cfg.ReportFile, "err", err)
		}
	}
	return rep, rep.Err()
}

// logFallback says that a run resumes from the previous checkpoint because
// the newest one was missing or unreadable, and what that costs. The
// journal since the previous state is kept until the state after it is
// saved, so everything acknowledged since is kept (acknowledged_since) and
// what is sent again is exactly what the journal shows as sent and not
// settled (resend): the records the server refused after the previous save
// (dead-lettered in the newest state only), plus what any resume sends
// again (the requests in flight at a crash, events throttled and not
// accepted since). Records settled without a send since the previous save
// (dead-lettered locally, filtered) are read and settled again, not sent.
func logFallback(log *slog.Logger, st *checkpoint.State, rep checkpoint.Replayed) {
	c := st.Counters
	msg := "resuming from the previous checkpoint and the journal since it: what was acknowledged since is kept; the events sent and not settled since are sent again (Amplitude drops them by insert_id)"
	args := []any{"previous_saved", st.Updated.UTC().Format(time.RFC3339), "previous_settled", c.EventsAccepted + c.EventsRejected + c.EventsFiltered,
		"acknowledged_since", rep.Settled, "resend", rep.Resend}
	if st.NewestErr != nil {
		args = append(args, "newest_error", st.NewestErr.Error())
		log.Warn(msg, args...)
		return
	}
	log.Info(msg, args...)
}
