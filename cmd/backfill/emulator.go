package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/backfillhq/backfill/emulator"
)

// emuShutdownTimeout bounds the graceful shutdown of `backfill emulator`.
const emuShutdownTimeout = 5 * time.Second

// emuStrings is a repeatable string flag.
type emuStrings []string

func (s *emuStrings) String() string { return strings.Join(*s, ",") }

func (s *emuStrings) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

const emuUsage = `Usage: backfill emulator [flags]

Runs a local fake of Amplitude's ingestion API: POST /batch and POST /2/httpapi
on any host, with Amplitude's validation, 413/429 limits, per-device and
per-user throttling, the daily quota, insert_id dedupe and optional fault
injection. It prints its base URL on the first line of stdout and serves until
interrupted.

Inspection endpoints: GET /_emulator/stats, GET /_emulator/events (JSON lines),
POST /_emulator/reset.

Examples:
  backfill emulator
  backfill emulator --addr 127.0.0.1:8080 --record accepted.jsonl --api-key test-key
  backfill emulator --batch-eps 300 --daily-quota 0 --fail-after-rate 0.05 --seed 42
  backfill emulator --latency 200ms --jitter 300ms --drop-rate 0.01 --throttle-rate 0.02
  backfill emulator --project-eps 1000 --project-rps 100     # a Starter-plan project

Limits set to 0 are turned off (--batch-eps 0 means no throttling on /batch).

Flags:
`

// runEmulator implements `backfill emulator`.
func runEmulator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), emuUsage)
		fs.PrintDefaults()
	}
	var (
		apiKeys  emuStrings
		silenced emuStrings
		errs     emuStrings
	)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (port 0 picks a free port)")
	record := fs.String("record", "", "append every accepted, non-duplicate event to `FILE` as JSON lines {\"endpoint\":...,\"event\":{...}}")
	fs.Var(&apiKeys, "api-key", "accepted API `KEY` (repeatable or comma-separated; default: any non-empty key)")
	batchEPS := fs.Int("batch-eps", emulator.DefaultBatchEPS, "/batch per-device and per-user limit, events/s averaged over 30 s (0 = off)")
	httpEPS := fs.Int("http-eps", emulator.DefaultHTTPEPS, "/2/httpapi per-device and per-user limit, events/s averaged over 30 s (0 = off)")
	projectEPS := fs.Int("project-eps", 0, "project-wide limit per API key, events over any 1 s window, both endpoints together; over it a 429 names no id (0 = off)")
	projectRPS := fs.Int("project-rps", 0, "project-wide limit per API key, requests over any 1 s window (0 = off)")
	quota := fs.Int("daily-quota", emulator.DefaultDailyQuota, "events per device_id and per user_id in a rolling 24 h (0 = off)")
	maxBatch := fs.Int("max-batch-bytes", emulator.DefaultMaxBatchBytes, "largest decompressed /batch body; larger gets 413 (0 = off)")
	maxHTTP := fs.Int("max-http-bytes", emulator.DefaultMaxHTTPBytes, "largest decompressed /2/httpapi body; larger gets 413 (0 = off)")
	strict := fs.Bool("strict", false, "reject a Content-Type other than application/json with 400")
	fs.Var(&silenced, "silence", "`DEVICE_ID` whose events get the 400 silenced answer (repeatable or comma-separated)")
	keep := fs.Bool("keep-events", true, "keep accepted events in memory for GET /_emulator/events (turn off for long runs)")
	seed := fs.Int64("seed", 1, "seed for fault and jitter randomness (same seed, same faults)")
	dropRate := fs.Float64("drop-rate", 0, "probability of closing the connection without an answer")
	forbidRate := fs.Float64("forbidden-rate", 0, "probability of a 403")
	unavailRate := fs.Float64("unavailable-rate", 0, "probability of a 503 (never ingests)")
	beforeRate := fs.Float64("fail-before-rate", 0, "probability of a 500/502/504 before ingesting")
	afterRate := fs.Float64("fail-after-rate", 0, "probability of ingesting, then answering 500/502/504")
	tooLargeRate := fs.Float64("too-large-rate", 0, "probability of a 413 on a valid request")
	throttleRate := fs.Float64("throttle-rate", 0, "probability of a 429 (all events throttled) on a valid request")
	fs.Var(&errs, "server-errors", "`STATUSES` the 5xx faults choose from (comma-separated, default 500,502,504)")
	latency := fs.Duration("latency", 0, "fixed delay before every answer")
	jitter := fs.Duration("jitter", 0, "random extra delay in [0, jitter)")
	verbose := fs.Bool("v", false, "log every rejected request to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("emulator: unexpected argument %q", fs.Arg(0))
	}

	var serverErrs []int
	for _, e := range errs {
		var n int
		if _, err := fmt.Sscanf(e, "%d", &n); err != nil {
			return fmt.Errorf("emulator: --server-errors %q: not a status", e)
		}
		serverErrs = append(serverErrs, n)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg := emulator.Config{
		BatchEPS:      emuLimit(*batchEPS),
		HTTPEPS:       emuLimit(*httpEPS),
		DailyQuota:    emuLimit(*quota),
		ProjectEPS:    *projectEPS,
		ProjectRPS:    *projectRPS,
		MaxBatchBytes: emuLimit(*maxBatch),
		MaxHTTPBytes:  emuLimit(*maxHTTP),
		APIKeys:       apiKeys,
		Strict:        *strict,
		Silenced:      silenced,
		Seed:          *seed,
		DiscardEvents: !*keep,
		Logger:        logger,
		Faults: emulator.Faults{
			DropRate:        *dropRate,
			ForbiddenRate:   *forbidRate,
			UnavailableRate: *unavailRate,
			FailBeforeRate:  *beforeRate,
			FailAfterRate:   *afterRate,
			TooLargeRate:    *tooLargeRate,
			ThrottleRate:    *throttleRate,
			ServerErrors:    serverErrs,
			Latency:         *latency,
			Jitter:          *jitter,
		},
	}
	if *record != "" {
		f, err := os.OpenFile(*record, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("emulator: open record file: %w", err)
		}
		defer f.Close()
		cfg.Record = f
	}
	srv, err := emulator.New(cfg)
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *addr)
	if err != nil {
		return fmt.Errorf("emulator: listen: %w", err)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if _, err := fmt.Fprintf(stdout, "http://%s\n", ln.Addr()); err != nil {
		ln.Close()
		return fmt.Errorf("emulator: write address: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("emulator: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), emuShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
		return fmt.Errorf("emulator: shutdown: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("emulator: serve: %w", err)
	}
	st := srv.Stats()
	logger.Info("emulator stopped", "requests_batch", st.RequestsBatch, "requests_httpapi", st.RequestsHTTP,
		"events_accepted", st.EventsAccepted, "events_duplicate", st.EventsDuplicate)
	return nil
}

// emuLimit maps the CLI's "0 = off" to the Config's Unlimited.
func emuLimit(n int) int {
	if n <= 0 {
		return emulator.Unlimited
	}
	return n
}
