package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/amplitude/analytics-go/amplitude"
)

// sdkResult is what the SDK child prints on stdout as JSON.
type sdkResult struct {
	Sent     int64   `json:"sent"`     // events passed to Track
	Settled  int64   `json:"settled"`  // events the SDK reported back (ExecuteCallback), any status
	OK       int64   `json:"ok"`       // of those, with status 200
	Finished bool    `json:"finished"` // Shutdown returned before the cap
	Seconds  float64 `json:"seconds"`
	Last     float64 `json:"last_settled_s"` // when the last event was reported back, from the start
}

// sdkLine is the naive decoding of one JSON line: the SDK's event with the
// properties as generic maps.
type sdkLine struct {
	EventType string `json:"event_type"`
	amplitude.EventOptions
	EventProperties map[string]any `json:"event_properties"`
	UserProperties  map[string]any `json:"user_properties"`
}

type quietLogger struct{}

func (quietLogger) Debugf(string, ...any) {}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}

// sdkBackfill is the naive backfill a developer would write with the
// official Go SDK: read each JSON line, Track it with UseBatch and
// FlushQueueSize 2000, then Shutdown (which flushes). Everything else is
// the SDK's default, including its bounded queue (MaxStorageCapacity
// 20,000), which drops events without an error when Track outruns the
// single sending goroutine, and its 30 s pause after a 429. When cap > 0,
// it stops waiting for Shutdown after cap (measured from the start).
//
// With patient set, it waits before Shutdown until the SDK has reported
// every event through ExecuteCallback (calling Flush every second, so
// events throttled by a 429 are retried as soon as their 30 s pause ends),
// or until no event was reported for 70 s, or the cap: Shutdown itself
// drops the events still waiting for a retry.
func sdkBackfill(path, endpoint string, limit time.Duration, patient bool) (sdkResult, error) {
	start := time.Now()
	f, closeLines, err := linesOf(path) // a file or a directory of objects
	if err != nil {
		return sdkResult{}, err
	}
	defer closeLines()
	cfg := amplitude.NewConfig(benchAPIKey)
	cfg.UseBatch = true
	cfg.FlushQueueSize = 2000
	cfg.ServerURL = endpoint + "/batch"
	cfg.Logger = quietLogger{}
	var settled, ok, last atomic.Int64
	cfg.ExecuteCallback = func(r amplitude.ExecuteResult) {
		last.Store(int64(time.Since(start)))
		settled.Add(1)
		if r.Code == 200 {
			ok.Add(1)
		}
	}
	client := amplitude.NewClient(cfg)

	var res sdkResult
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		var l sdkLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return res, fmt.Errorf("line %d: %w", res.Sent+1, err)
		}
		ev := amplitude.Event{EventType: l.EventType, EventOptions: l.EventOptions, EventProperties: l.EventProperties}
		if l.UserProperties != nil {
			ev.UserProperties = map[amplitude.IdentityOp]map[string]any{amplitude.IdentityOp("$set"): l.UserProperties}
		}
		client.Track(ev)
		res.Sent++
	}
	if err := sc.Err(); err != nil {
		return res, err
	}
	if patient {
		last, lastN := time.Now(), int64(-1)
		for settled.Load() < res.Sent && time.Since(last) < 70*time.Second && (limit <= 0 || time.Since(start) < limit) {
			if n := settled.Load(); n != lastN {
				last, lastN = time.Now(), n
			}
			client.Flush()
			time.Sleep(time.Second)
		}
	}
	done := make(chan struct{})
	go func() {
		client.Shutdown()
		close(done)
	}()
	var timeout <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(max(time.Millisecond, limit-time.Since(start)))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-done:
		res.Finished = true
	case <-timeout:
	}
	res.Seconds = time.Since(start).Seconds()
	res.Settled, res.OK = settled.Load(), ok.Load()
	res.Last = time.Duration(last.Load()).Seconds()
	return res, nil
}
