package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/backfillhq/backfill/amplitude"
	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/chunker"
	"github.com/backfillhq/backfill/internal/escape"
	"github.com/backfillhq/backfill/internal/redact"
	"github.com/backfillhq/backfill/job"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/uploader"
)

// jobFlags are the flags shared by run, plan and validate.
type jobFlags struct {
	// reading
	format    string
	delimiter string
	csvTypes  listFlag
	columns   listFlag
	// mapping
	preset       string
	mapping      string
	noSkipUPSync bool
	inclExcluded bool
	minIDLength  int
	// sending
	endpoint      string
	region        string
	apiKey        string
	gzip          bool
	maxAttempts   int
	throttlePause time.Duration
	route         string
	tailEvents    int
	tailRatio     float64
	// pacing
	lanes      int
	eps        int
	httpEPS    int
	daily      int
	maxEPS     float64
	maxRPS     float64
	batchSize  int
	linger     time.Duration
	waitParked bool
	// state
	checkpoint      string
	checkpointEvery time.Duration
	shutdownTimeout time.Duration
	shard           string
	shardCount      int
	deadLetter      string
	report          string
	force           bool
	lockTTL         time.Duration
	lockWait        time.Duration
	allowRejected   bool
	failFast        bool
	dryRun          bool
	// output
	progress  string
	progEvery time.Duration
	quiet     bool
	logFormat string
	logLevel  string
	metrics   string
	memLimit  sizeFlag
}

func (f *jobFlags) register(fs *flag.FlagSet, sending bool) {
	fs.StringVar(&f.format, "format", "", "input `format`: jsonl, json, csv, tsv or parquet (default: from each file's extension)")
	fs.StringVar(&f.delimiter, "csv-delimiter", "", "CSV field delimiter `char` (default ',')")
	fs.Var(&f.csvTypes, "csv-types", "CSV column types as `col:type,...` with type string|int|float|bool|json (repeatable)")
	fs.Var(&f.columns, "columns", "Parquet columns to read, `col,...` (default: all)")
	fs.StringVar(&f.preset, "preset", "amplitude", "input mapping `preset`: amplitude, amplitude-export, mixpanel, segment, ga4, posthog")
	fs.StringVar(&f.mapping, "mapping", "", "mapping `file` (YAML or JSON) describing how source records become Amplitude events")
	fs.BoolVar(&f.inclExcluded, "include-excluded", false, "send records the source excluded from Amplitude (Segment integrations {\"Amplitude\": false} or {\"All\": false}); by default they are skipped and counted as skipped")
	fs.BoolVar(&f.noSkipUPSync, "sync-user-properties", false, "let backfilled events update the live user table (by default events carry $skip_user_properties_sync: true, as Amplitude advises for backfills)")
	fs.IntVar(&f.minIDLength, "min-id-length", 0, "minimum user_id/device_id length sent as options.min_id_length (default: Amplitude's 5)")
	fs.StringVar(&f.checkpoint, "checkpoint", job.DefaultCheckpoint, "checkpoint `location`: a directory, or a bucket URL such as s3://bucket/state/job1")
	fs.StringVar(&f.shard, "shard", "", "run shard `INDEX/COUNT` of the job (0-based), e.g. 2/8")
	fs.IntVar(&f.shardCount, "shard-count", 0, "number of shards; the index comes from JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs)")
	fs.StringVar(&f.route, "route", job.RouteAuto, "endpoint `mode`: auto (small trailing partitions via /2/httpapi, the rest via /batch), batch or http")
	fs.IntVar(&f.tailEvents, "tail-events", job.DefaultTailEvents, "with --route auto, the most `events` the trailing partitions may hold to go through /2/httpapi")
	fs.Float64Var(&f.tailRatio, "tail-ratio", job.DefaultTailRatio, "with --route auto, a trailing partition goes through /2/httpapi only if its size is at most this `fraction` of the median partition before the tail")
	fs.IntVar(&f.eps, "eps", chunker.DefaultEPS, "pace per device_id and user_id on /batch, in `events/s` averaged over 30 s (Amplitude's limit is 1000; its backfill guidance says 300)")
	fs.IntVar(&f.httpEPS, "http-eps", pipeline.DefaultHTTPEPS, "pace per device_id and user_id on /2/httpapi, in `events/s` (Amplitude's limit is 30)")
	fs.IntVar(&f.daily, "daily-budget", 0, "cap each device_id and user_id at this many `events` per rolling 24 h, below Amplitude's daily quota (500,000), parking the rest for a later run instead of meeting 429s (default: no cap)")
	fs.Float64Var(&f.maxEPS, "max-eps", 0, "project-wide ceiling in `events/s` for the whole run, on each route, shared by all lanes (a shard takes 1/COUNT); 0 = none, though Amplitude's project-level 429s still lower the rate")
	fs.Float64Var(&f.maxRPS, "max-rps", 0, "project-wide ceiling in `requests/s`, like --max-eps")
	if !sending {
		return
	}
	fs.StringVar(&f.endpoint, "endpoint", "", "Amplitude base `URL` (default "+amplitude.USEndpoint+"; an emulator's URL to rehearse)")
	fs.StringVar(&f.region, "region", "", "`us` or eu: use Amplitude's EU residency host "+amplitude.EUEndpoint)
	fs.StringVar(&f.apiKey, "api-key", "", "Amplitude project API `key` (prefer the AMPLITUDE_API_KEY environment variable)")
	fs.BoolVar(&f.gzip, "gzip", false, "gzip request bodies (saves bandwidth, costs CPU)")
	fs.IntVar(&f.maxAttempts, "max-attempts", uploader.DefaultMaxAttempts, "sends of one request on 5xx, timeouts and network errors before the run stops")
	fs.DurationVar(&f.throttlePause, "throttle-pause", uploader.DefaultThrottlePause, "how long to pause a device or user named in a 429 response")
	fs.IntVar(&f.lanes, "lanes", pipeline.DefaultLanes, "device lanes: the most requests in flight (each lane has at most one, keeping each device's order)")
	fs.IntVar(&f.batchSize, "batch-size", uploader.MaxEvents, "most events per request (Amplitude's limit is 2000)")
	fs.DurationVar(&f.linger, "linger", chunker.DefaultLinger, "how long a request that is not full waits for more events")
	fs.BoolVar(&f.waitParked, "wait-parked", false, "keep running while ids over Amplitude's daily quota are parked (default: stop with exit code 4 and resume later)")
	fs.DurationVar(&f.checkpointEvery, "checkpoint-every", pipeline.DefaultCheckpointEvery, "interval between checkpoint saves")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", pipeline.DefaultShutdownTimeout, "after Ctrl-C/SIGTERM, how long requests in flight may take to finish before they are cancelled")
	fs.StringVar(&f.deadLetter, "dead-letter", "", "dead-letter `file` for rejected records (default: dead-letter.jsonl in the checkpoint directory)")
	fs.StringVar(&f.report, "report", "", "write the JSON report to this `file` (default: report.json in the checkpoint directory)")
	fs.BoolVar(&f.force, "force", false, "resume although the configuration changed, take over a lock, or truncate an unaccounted dead-letter file")
	fs.DurationVar(&f.lockTTL, "lock-ttl", 0, "a bucket checkpoint's lock goes stale, and is taken over, after this `duration` without a heartbeat (one per checkpoint save; default "+checkpoint.DefaultLockTTL.String()+")")
	fs.DurationVar(&f.lockWait, "lock-wait", 0, "wait up to this `duration` for a checkpoint lock held by another run to be released or go stale, instead of failing at once (e.g. a replacement Kubernetes pod)")
	fs.BoolVar(&f.allowRejected, "allow-rejected", false, "exit 0, not 3, when the job completes with rejected records (for schedulers such as Kubernetes Jobs that retry any other exit code)")
	fs.BoolVar(&f.failFast, "fail-fast", false, "stop at the first object that cannot be read (default: report it and go on)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "list the objects and their routes, then exit without sending")
	fs.StringVar(&f.progress, "progress", "auto", "progress `mode`: auto (a bar on a terminal, log lines otherwise), bar, plain or none")
	fs.DurationVar(&f.progEvery, "progress-interval", 10*time.Second, "interval between progress log lines when not on a terminal (--progress plain)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress output and no summary; errors only")
	fs.StringVar(&f.logFormat, "log-format", "text", "log `format`: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&f.metrics, "metrics-addr", "", "serve Prometheus metrics on this `address` (e.g. :9090)")
	fs.Var(&f.memLimit, "memory-limit", "soft limit on the Go runtime's memory (heap and stacks), e.g. 256MiB; the garbage collector works harder near it, nothing fails; peak RSS is about 45 MB above it; 0 or off for none (default "+formatSize(defaultMemoryLimit)+", raised while collections take over 15% of the CPU; GOMEMLIMIT when set)")
}

// config turns the flags into a job.Config.
func (f *jobFlags) config(sources []string, env *environ, stderr io.Writer) (job.Config, error) {
	cfg := job.Config{
		Sources:                sources,
		Format:                 f.format,
		Columns:                f.columns,
		Preset:                 f.preset,
		MappingFile:            f.mapping,
		SkipUserPropertiesSync: !f.noSkipUPSync,
		MinIDLength:            f.minIDLength,
		IncludeExcluded:        f.inclExcluded,
		Endpoint:               f.endpoint,
		Gzip:                   f.gzip,
		MaxAttempts:            f.maxAttempts,
		ThrottlePause:          f.throttlePause,
		Route:                  f.route,
		TailEvents:             f.tailEvents,
		TailRatio:              f.tailRatio,
		Lanes:                  f.lanes,
		EPS:                    f.eps,
		HTTPEPS:                f.httpEPS,
		DailyBudget:            f.daily,
		MaxEPS:                 f.maxEPS,
		MaxRPS:                 f.maxRPS,
		BatchSize:              f.batchSize,
		Linger:                 f.linger,
		WaitParked:             f.waitParked,
		Checkpoint:             f.checkpoint,
		CheckpointEvery:        f.checkpointEvery,
		ShutdownTimeout:        f.shutdownTimeout,
		Shard:                  f.shard,
		DeadLetter:             f.deadLetter,
		ReportFile:             f.report,
		Force:                  f.force,
		LockTTL:                f.lockTTL,
		LockWait:               f.lockWait,
		FailFast:               f.failFast,
	}
	if f.delimiter != "" {
		r := []rune(f.delimiter)
		if f.delimiter == `\t` || f.delimiter == "tab" {
			r = []rune{'\t'}
		}
		if len(r) != 1 {
			return cfg, fmt.Errorf("%w: --csv-delimiter must be one character, not %q", job.ErrUsage, f.delimiter)
		}
		cfg.Delimiter = r[0]
	}
	if len(f.csvTypes) > 0 {
		cfg.ColumnTypes = map[string]string{}
		for _, kv := range f.csvTypes {
			k, v, ok := strings.Cut(kv, ":")
			if !ok || k == "" || v == "" {
				return cfg, fmt.Errorf("%w: --csv-types wants column:type, not %q", job.ErrUsage, kv)
			}
			cfg.ColumnTypes[k] = v
		}
	}
	switch strings.ToLower(f.region) {
	case "", "us":
	case "eu":
		if cfg.Endpoint == "" {
			cfg.Endpoint = amplitude.EUEndpoint
		}
	default:
		return cfg, fmt.Errorf("%w: --region must be us or eu, not %q", job.ErrUsage, f.region)
	}
	if f.shardCount > 0 && f.shard == "" {
		idx := env.get("JOB_COMPLETION_INDEX")
		if idx == "" {
			return cfg, fmt.Errorf("%w: --shard-count needs JOB_COMPLETION_INDEX (set by Kubernetes Indexed Jobs) or --shard INDEX/COUNT", job.ErrUsage)
		}
		cfg.Shard = idx + "/" + fmt.Sprint(f.shardCount)
	}
	return cfg, nil
}

// apiKeyFrom picks the API key: --api-key (with a warning: flags show up in
// shell history and process lists), else AMPLITUDE_API_KEY, else
// BACKFILL_API_KEY or the config file (already applied to the flag).
func apiKeyFrom(f *jobFlags, fs *flag.FlagSet, env *environ, log *slog.Logger) string {
	explicit := false
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "api-key" {
			explicit = true
		}
	})
	if explicit && f.apiKey != "" {
		log.Warn("the API key was passed as a flag, where shell history and process lists can see it; prefer the AMPLITUDE_API_KEY environment variable")
		return f.apiKey
	}
	if k := env.get("AMPLITUDE_API_KEY"); k != "" {
		return k
	}
	return f.apiKey
}

// newLogger builds the logger of a command from the flags. Every string
// and error it writes passes through redact.Text with the API key env holds
// by then, so a URL with a password or a server echo of the key that
// reaches a log line is masked there too. (slog's handlers already quote
// or escape control characters, so untrusted text cannot forge a line.)
func newLogger(f *jobFlags, w io.Writer, env *environ) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("%w: --log-level must be debug, info, warn or error, not %q", job.ErrUsage, f.logLevel)
	}
	if f.quiet && level < slog.LevelWarn {
		level = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		switch v := a.Value; v.Kind() {
		case slog.KindString:
			if s := v.String(); s != "" {
				a.Value = slog.StringValue(redact.Text(s, env.apiKey))
			}
		case slog.KindAny:
			if err, ok := v.Any().(error); ok && err != nil {
				a.Value = slog.StringValue(redact.Text(err.Error(), env.apiKey))
			}
		}
		return a
	}}
	switch f.logFormat {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("%w: --log-format must be text or json, not %q", job.ErrUsage, f.logFormat)
}

const runUsage = `Usage: backfill run [flags] SOURCE...

Sends every event of SOURCE to Amplitude, resumably. SOURCE is a file, a
directory, a glob, or a URL: file:///data, s3://bucket/prefix,
gs://bucket/prefix, azblob://container/prefix (globs: s3://b/dt=2024-*/*.parquet).
Formats: JSON lines, JSON arrays, CSV/TSV, Parquet; .gz and .zst compressed.

Run the same command again after a crash or Ctrl-C: it resumes from the
checkpoint, re-sending only what was in flight (Amplitude drops those by
insert_id). Re-running a finished job over a prefix sends only new objects.

Examples:
  export AMPLITUDE_API_KEY=...
  backfill run ./events/
  backfill run --checkpoint s3://bucket/state/job1 s3://bucket/events/
  backfill run --preset mixpanel gs://exports/mixpanel/2024-*.json.gz
  backfill run --endpoint http://127.0.0.1:8080 ./events.jsonl   # against 'backfill emulator'

Every flag can also be set as BACKFILL_<FLAG> (e.g. BACKFILL_EPS=200) or in
a --config YAML file; flags win over the environment, which wins over the file.

Exit codes: 0 all accepted; 1 failed; 2 usage; 3 completed with rejected
records (see the dead-letter file); 4 incomplete (ids parked for the daily
quota: run again later); 130 interrupted (run again to resume).

Flags:
`

func cmdRun(hard, soft context.Context, args []string, env *environ, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var f jobFlags
	f.register(fs, true)
	fs.Usage = func() { fmt.Fprint(stderr, runUsage); fs.PrintDefaults() }
	sources, err := parseFlags(fs, args, env, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(&f, stderr, env)
	if err != nil {
		return err
	}
	cfg, err := f.config(sources, env, stderr)
	if err != nil {
		return err
	}
	cfg.APIKey = apiKeyFrom(&f, fs, env, log)
	env.apiKey = cfg.APIKey
	return execute(hard, soft, cfg, &f, env, log, stdout, stderr)
}

// execute runs a job with progress display and summary, mapping the
// outcome to the errors exitCode understands.
func execute(hard, soft context.Context, cfg job.Config, f *jobFlags, env *environ, log *slog.Logger, stdout, stderr io.Writer) error {
	if f.dryRun {
		return job.DryRun(hard, cfg, stdout)
	}
	cfg.Logger = log
	stats := new(pipeline.Stats)
	cfg.Stats = stats
	prog := newProgress(f.progress, f.quiet, stderr, stats, log)
	prog.every = f.progEvery
	cfg.OnStart = prog.start
	cfg.OnCeilings = prog.setCeilings
	if f.metrics != "" {
		stop, err := serveMetrics(f.metrics, stats, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	defer applyMemoryLimit(f.memLimit, env, log)()
	rep, err := job.Run(hard, soft, cfg)
	prog.finish(err == nil || errors.Is(err, job.ErrRejected))
	if rep == nil {
		return err
	}
	if !f.quiet {
		rep.WriteSummary(stdout)
	}
	switch rep.Status {
	case job.StatusComplete:
		return nil
	case job.StatusRejected:
		if f.allowRejected {
			return nil
		}
		return job.ErrRejected
	case job.StatusInterrupted:
		if hard.Err() != nil {
			fmt.Fprintln(stderr, "aborted: the requests in flight were cancelled and the checkpoint is saved; run the same command again to resume (the cancelled events are sent again, and Amplitude drops duplicates by insert_id)")
		} else {
			fmt.Fprintln(stderr, "interrupted: the requests in flight finished and the checkpoint is saved; run the same command again to resume")
		}
		return shown{rep.Status}
	case job.StatusIncomplete:
		// Only ids parked for Amplitude's daily quota end a run incomplete.
		fmt.Fprintf(stderr, "incomplete: %s (ids over Amplitude's daily quota are parked)\nrun the same command again later to finish (or pass --wait-parked)\n", escape.Line(rep.Error))
		return shown{rep.Status}
	}
	return err
}
