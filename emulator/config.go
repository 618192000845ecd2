package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/amplitude"
)

// Defaults used when the matching Config field is zero. They are Amplitude's
// documented values (amplitude-api.md §5).
const (
	// DefaultBatchEPS is the per-device and per-user threshold of /batch,
	// in events per second averaged over the throttle window.
	DefaultBatchEPS = amplitude.BatchEPS
	// DefaultHTTPEPS is the per-device and per-user threshold of /2/httpapi.
	DefaultHTTPEPS = amplitude.HTTPEPS
	// DefaultDailyQuota is the number of events one device_id or user_id may
	// send in a rolling 24 h window.
	DefaultDailyQuota = amplitude.DailyQuota
	// DefaultMaxBatchBytes is the largest decompressed /batch body.
	DefaultMaxBatchBytes = amplitude.MaxBatchBytes
	// DefaultMaxHTTPBytes is the largest decompressed /2/httpapi body.
	DefaultMaxHTTPBytes = amplitude.MaxHTTPBytes
	// DefaultMinIDLength is the minimum user_id/device_id length when the
	// request has no options.min_id_length.
	DefaultMinIDLength = amplitude.MinIDLength
	// MaxEventsPerRequest is the most events one request may carry on
	// either endpoint; more is a 413.
	MaxEventsPerRequest = amplitude.MaxEvents
	// ThrottleWindow is the window over which events/s are averaged.
	ThrottleWindow = amplitude.Window
	// DedupeWindow is how long an insert_id is remembered.
	DedupeWindow = amplitude.DedupeWindow
)

// Unlimited, set in BatchEPS, HTTPEPS, DailyQuota, MaxBatchBytes or
// MaxHTTPBytes, turns that limit off (zero means "use the default").
const Unlimited = -1

// ErrInvalidConfig is returned (wrapped) by New for a Config it cannot use.
var ErrInvalidConfig = errors.New("invalid emulator config")

// Config configures a Server. The zero value emulates Amplitude with its
// real defaults, accepts any non-empty API key and injects no faults.
type Config struct {
	// BatchEPS is the /batch per-id threshold in events/s over 30 s.
	// 0 means DefaultBatchEPS; Unlimited (or any negative) disables it.
	BatchEPS int
	// HTTPEPS is the /2/httpapi per-id threshold in events/s over 30 s.
	// 0 means DefaultHTTPEPS; Unlimited (or any negative) disables it.
	HTTPEPS int
	// DailyQuota is the per-id event count allowed in a rolling 24 h.
	// 0 means DefaultDailyQuota; Unlimited (or any negative) disables it.
	DailyQuota int
	// ProjectEPS and ProjectRPS, when > 0, limit each API key (a project)
	// to that many events and requests over any ProjectWindow, on both
	// endpoints together; a request over either gets a 429 that names no
	// device or user. 0 (the default) means no project-wide limit:
	// Amplitude's depends on the plan.
	ProjectEPS, ProjectRPS int
	// APIKeys lists the accepted keys. When empty, any non-empty key is
	// accepted.
	APIKeys []string
	// MaxBatchBytes bounds the decompressed /batch body (413 above it).
	// 0 means the default; Unlimited (or any negative) disables the check.
	MaxBatchBytes int
	// MaxHTTPBytes bounds the decompressed /2/httpapi body, like
	// MaxBatchBytes.
	MaxHTTPBytes int
	// Strict rejects a Content-Type other than application/json (an
	// optional charset parameter is allowed) with a 400.
	Strict bool
	// Silenced lists device_ids whose events get the 400 silenced answer.
	Silenced []string
	// Faults configures injected failures.
	Faults Faults
	// Now is the clock for windows, quotas, dedupe and server_upload_time.
	// Default time.Now.
	Now func() time.Time
	// Sleep waits for injected latency. Default: a timer that stops early
	// when ctx is done.
	Sleep func(ctx context.Context, d time.Duration) error
	// Seed seeds the fault and jitter random source; the same seed and the
	// same request sequence give the same faults.
	Seed int64
	// Record, when set, receives every accepted non-duplicate event as one
	// JSON line {"endpoint":"batch"|"httpapi","event":{...}}.
	Record io.Writer
	// DiscardEvents stops the server from keeping accepted events in
	// memory (Events and /_emulator/events then return nothing). Use it for
	// long runs; stats, dedupe and Record are unaffected.
	DiscardEvents bool
	// Logger receives debug lines for rejected requests and warnings for
	// Record write errors. Default slog.Default(). API keys are never
	// logged.
	Logger *slog.Logger
}

// Faults are injected failures. Rates are probabilities in [0, 1] drawn
// once per Amplitude request; they are mutually exclusive, so their sum must
// not exceed 1. Forced outcomes queued with FailNext, FailNextAfterIngest or
// DropNext take precedence over the rates.
type Faults struct {
	// DropRate closes the connection without an answer, before reading
	// the body or ingesting anything.
	DropRate float64
	// ForbiddenRate answers 403 {"code":403,"error":"Forbidden"}.
	ForbiddenRate float64
	// UnavailableRate answers 503; nothing is ingested.
	UnavailableRate float64
	// FailBeforeRate answers 500, 502 or 504 without ingesting.
	FailBeforeRate float64
	// FailAfterRate processes the request normally and, when it would get a
	// 200, ingests it and then answers 500, 502 or 504 (so a retry makes
	// duplicates that dedupe must absorb).
	FailAfterRate float64
	// TooLargeRate answers 413 to a request that passed validation.
	TooLargeRate float64
	// ThrottleRate answers 429 to a request that passed validation, listing
	// all its events as throttled.
	ThrottleRate float64
	// ServerErrors is the set of statuses the two 5xx modes choose from,
	// uniformly. Default {500, 502, 504}.
	ServerErrors []int
	// Latency delays every Amplitude request (through Config.Sleep).
	Latency time.Duration
	// Jitter adds a uniform random extra delay in [0, Jitter).
	Jitter time.Duration
}

// limits holds the resolved configuration.
type limits struct {
	batchEPS, httpEPS   int // 0 = off
	dailyQuota          int // 0 = off
	projectEPS          int // 0 = off
	projectRPS          int // 0 = off
	maxBatch, maxHTTP   int // 0 = off
	serverErrs          []int
	apiKeys             map[string]struct{}
	silenced            map[string]struct{}
	now                 func() time.Time
	sleep               func(context.Context, time.Duration) error
	record              io.Writer
	discard, strict     bool
	latency, jitter     time.Duration
	cumulative          [7]float64 // fault thresholds, in fault order
	logger              *slog.Logger
	hasFaults, hasDelay bool
}

func resolve(def, v int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

func (c Config) resolve() (limits, error) {
	l := limits{
		batchEPS:   resolve(DefaultBatchEPS, c.BatchEPS),
		httpEPS:    resolve(DefaultHTTPEPS, c.HTTPEPS),
		dailyQuota: resolve(DefaultDailyQuota, c.DailyQuota),
		projectEPS: max(c.ProjectEPS, 0),
		projectRPS: max(c.ProjectRPS, 0),
		maxBatch:   resolve(DefaultMaxBatchBytes, c.MaxBatchBytes),
		maxHTTP:    resolve(DefaultMaxHTTPBytes, c.MaxHTTPBytes),
		now:        c.Now,
		sleep:      c.Sleep,
		record:     c.Record,
		discard:    c.DiscardEvents,
		strict:     c.Strict,
		latency:    c.Faults.Latency,
		jitter:     c.Faults.Jitter,
		logger:     c.Logger,
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.sleep == nil {
		l.sleep = backfill.Sleep
	}
	if l.logger == nil {
		l.logger = slog.Default()
	}
	l.logger = l.logger.With("component", "emulator")
	if len(c.APIKeys) > 0 {
		l.apiKeys = make(map[string]struct{}, len(c.APIKeys))
		for _, k := range c.APIKeys {
			if k == "" {
				return l, fmt.Errorf("%w: empty api key", ErrInvalidConfig)
			}
			l.apiKeys[k] = struct{}{}
		}
	}
	l.silenced = make(map[string]struct{}, len(c.Silenced))
	for _, d := range c.Silenced {
		l.silenced[d] = struct{}{}
	}
	if l.latency < 0 || l.jitter < 0 {
		return l, fmt.Errorf("%w: negative latency or jitter", ErrInvalidConfig)
	}
	l.hasDelay = l.latency > 0 || l.jitter > 0
	f := c.Faults
	rates := [7]float64{f.DropRate, f.ForbiddenRate, f.UnavailableRate, f.FailBeforeRate,
		f.FailAfterRate, f.TooLargeRate, f.ThrottleRate}
	sum := 0.0
	for i, r := range rates {
		if r < 0 || r > 1 || r != r {
			return l, fmt.Errorf("%w: fault rate %v not in [0,1]", ErrInvalidConfig, r)
		}
		sum += r
		l.cumulative[i] = sum
		if r > 0 {
			l.hasFaults = true
		}
	}
	if sum > 1+1e-9 {
		return l, fmt.Errorf("%w: fault rates sum to %v, more than 1", ErrInvalidConfig, sum)
	}
	l.serverErrs = f.ServerErrors
	if len(l.serverErrs) == 0 {
		l.serverErrs = []int{500, 502, 504}
	}
	for _, s := range l.serverErrs {
		if s < 500 || s > 599 {
			return l, fmt.Errorf("%w: server error status %d not 5xx", ErrInvalidConfig, s)
		}
	}
	return l, nil
}
