package uploader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/amplitude"
	"github.com/backfillhq/backfill/ceiling"
	"github.com/backfillhq/backfill/internal/redact"
)

// sendState accumulates a Result and the id sets behind it.
type sendState struct {
	res                                    Result
	pauseDev, pauseUsr, quotaDev, quotaUsr map[string]bool
}

func addIDs(set *map[string]bool, ids []string) {
	if len(ids) == 0 {
		return
	}
	if *set == nil {
		*set = make(map[string]bool)
	}
	for _, id := range ids {
		(*set)[id] = true
	}
}

func (s *sendState) finish(pause time.Duration) Result {
	r := s.res
	sort.Ints(r.Accepted)
	sort.Ints(r.Throttled)
	sort.Ints(r.Parked)
	sort.Slice(r.Rejected, func(a, b int) bool { return r.Rejected[a].Index < r.Rejected[b].Index })
	r.PauseDevices = sortedKeys(s.pauseDev)
	r.PauseUsers = sortedKeys(s.pauseUsr)
	r.QuotaDevices = sortedKeys(s.quotaDev)
	r.QuotaUsers = sortedKeys(s.quotaUsr)
	if len(r.Throttled) > 0 {
		r.PauseFor = pause
	}
	return r
}

// Send delivers events to route and reports what happened to each one (see
// the package doc for every outcome). It returns when each event is
// settled, or with ctx.Err() as soon as ctx ends, or with an error wrapping
// ErrRetriesExhausted or ErrFatal. In every case Result holds what was
// settled so far; unlisted indexes are unsettled.
func (c *Client) Send(ctx context.Context, route backfill.Route, events []backfill.Event) (Result, error) {
	st := &sendState{res: Result{Stats: Stats{Responses: make(map[int]int)}}}
	if route != backfill.RouteBatch && route != backfill.RouteHTTP {
		return st.finish(c.pause), fmt.Errorf("uploader: unknown route %d", route)
	}
	all := make([]int, len(events))
	for i := range all {
		all[i] = i
	}
	pending := c.presplit(events, all, amplitude.MaxBytes(route))
	lim := c.ceilings[route]
	for len(pending) > 0 {
		cur := pending[0]
		if most := lim.MaxEvents(); len(cur) > most {
			// The project ceiling allows smaller requests than the lane
			// packed (or than it did when the lane packed them).
			pending = append([][]int{cur[:most:most], cur[most:]}, pending[1:]...)
			continue
		}
		v, err := c.exchange(ctx, route, events, cur, &st.res.Stats)
		if err != nil {
			return st.finish(c.pause), err
		}
		r := &st.res
		switch v.kind {
		case kindResplit:
			// Resent from the top of the loop, cut to the lowered ceiling.
		case kindAccept:
			if r.Accepted == nil && len(pending) == 1 {
				// The common case, everything accepted at once: cur is
				// the last use of its indexes.
				r.Accepted = cur[:len(cur):len(cur)]
			} else {
				r.Accepted = append(r.Accepted, cur...)
			}
			pending = pending[1:]
		case kindPartial:
			rest := cur[:0:0]
			for pos, i := range cur {
				if reason, bad := v.rejected[pos]; bad {
					r.Rejected = append(r.Rejected, Rejection{Index: i, Reason: reason, Status: http.StatusBadRequest})
				} else {
					rest = append(rest, i)
				}
			}
			pending = replaceHead(pending, rest)
		case kindSplit:
			if len(cur) == 1 {
				r.Rejected = append(r.Rejected, Rejection{Index: cur[0], Reason: "payload too large", Status: http.StatusRequestEntityTooLarge})
				pending = pending[1:]
				break
			}
			r.Stats.Splits++
			half := len(cur) / 2
			pending = append([][]int{cur[:half:half], cur[half:]}, pending[1:]...)
		case kindThrottle:
			out := make(map[int]bool, len(v.throttled)+len(v.parked))
			for _, pos := range v.throttled {
				r.Throttled = append(r.Throttled, cur[pos])
				out[pos] = true
			}
			for _, pos := range v.parked {
				r.Parked = append(r.Parked, cur[pos])
				out[pos] = true
			}
			rest := cur[:0:0]
			for pos, i := range cur {
				if !out[pos] {
					rest = append(rest, i)
				}
			}
			pending = replaceHead(pending, rest)
			addIDs(&st.pauseDev, v.pauseDevices)
			addIDs(&st.pauseUsr, v.pauseUsers)
			addIDs(&st.quotaDev, v.quotaDevices)
			addIDs(&st.quotaUsr, v.quotaUsers)
		}
	}
	return st.finish(c.pause), nil
}

// replaceHead replaces pending[0] with rest, or drops it when rest is empty.
func replaceHead(pending [][]int, rest []int) [][]int {
	if len(rest) == 0 {
		return pending[1:]
	}
	pending[0] = rest
	return pending
}

// presplit cuts idx into requests of at most MaxEvents events and maxBytes
// bytes, keeping order. A single event larger than maxBytes goes alone (the
// server's 413 then rejects it).
func (c *Client) presplit(events []backfill.Event, idx []int, maxBytes int) [][]int {
	var out [][]int
	start, size := 0, c.Overhead()
	for k, i := range idx {
		n := len(events[i].Raw)
		if k > start {
			n++ // comma
		}
		if k > start && (k-start == MaxEvents || size+n > maxBytes) {
			out = append(out, idx[start:k:k])
			start, size = k, c.Overhead()
			n = len(events[i].Raw)
		}
		size += n
	}
	if start < len(idx) {
		out = append(out, idx[start:])
	}
	return out
}

// exchange sends the body for events[cur...] until it gets a response that
// is not retryable, and returns its verdict. It returns ctx.Err() when ctx
// ends, or a *StatusError for fatal responses and exhausted retries.
func (c *Client) exchange(ctx context.Context, route backfill.Route, events []backfill.Event, cur []int, stats *Stats) (verdict, error) {
	body := newReqBody(&c.enc, events, cur, c.gzip)
	defer body.release()
	target := c.batchURL
	if route == backfill.RouteHTTP {
		target = c.httpURL
	}
	lim := c.ceilings[route]
	// attempt counts the sends of this body that failed (plus the one in
	// progress); a project-level 429 the ceiling absorbed is not a failure.
	for attempt, sends := 1, 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return verdict{}, err
		}
		ticket, err := lim.Wait(ctx, len(cur))
		if err != nil {
			return verdict{}, err
		}
		stats.Requests++
		if sends > 0 {
			stats.Retries++
		}
		sends++
		stats.BytesSent += int64(body.Len())
		status, respBody, err := c.do(ctx, target, body)
		var v verdict
		var cause error
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				lim.Done(ticket, ceiling.Other)
				return verdict{}, cerr
			}
			stats.Responses[0]++
			msg := redact.Text(err.Error(), c.key)
			cause = &redactedCause{msg: msg, err: errors.Unwrap(err)}
			if status != 0 {
				msg = fmt.Sprintf("status %d: read response: %s", status, msg)
			}
			status = 0
			v = verdict{kind: kindRetry, message: msg, timeout: isTimeout(err)}
		} else {
			stats.Responses[status]++
			if status == http.StatusTooManyRequests {
				stats.Status429++
			}
			v = classify(status, respBody, events, cur, c.key)
			if v.project {
				stats.Project429++
			}
		}
		absorbed := lim.Done(ticket, outcome(status, v))
		if v.kind != kindAccept {
			c.logResponse(route, status, v, len(cur), attempt)
		}
		switch v.kind {
		case kindFatal:
			return verdict{}, &StatusError{Status: status, Message: v.message, Err: ErrFatal}
		case kindRetry:
			if v.project && absorbed {
				// The ceiling was lowered: resend at it (smaller, if it
				// now allows fewer events per request).
				attempt--
				if len(cur) > lim.MaxEvents() {
					return verdict{kind: kindResplit}, nil
				}
				continue
			}
			if attempt >= c.maxAttempts {
				return verdict{}, &StatusError{
					Status:  status,
					Message: fmt.Sprintf("gave up after %d attempts: %s", attempt, v.message),
					Err:     ErrRetriesExhausted,
					Cause:   cause,
				}
			}
			if err := c.sleep(ctx, c.backoff(attempt)); err != nil {
				if cerr := ctx.Err(); cerr != nil {
					return verdict{}, cerr
				}
				return verdict{}, fmt.Errorf("uploader: backoff: %w", err)
			}
		default:
			return v, nil
		}
	}
}

// outcome is what a response says about the project's load, for the
// ceiling: project-level 429s, 503s, 504s, 408s and timeouts push back;
// answers that took the request in are clean.
func outcome(status int, v verdict) ceiling.Outcome {
	switch {
	case v.project || v.timeout:
		return ceiling.Pushback
	case status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout || status == http.StatusRequestTimeout:
		return ceiling.Pushback
	case v.kind == kindAccept || v.kind == kindPartial || v.kind == kindSplit || v.kind == kindThrottle:
		return ceiling.Clean
	}
	return ceiling.Other
}

// isTimeout reports whether a transport error is a timeout (the client's
// Timeout, a deadline, a net.Error that says so).
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// do performs one POST and reads the response. A non-nil error with a
// non-zero status means the response was truncated.
func (c *Client) do(ctx context.Context, target string, body *reqBody) (int, []byte, error) {
	rd, err := body.reader()
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, rd)
	if err != nil {
		rd.Close()
		return 0, nil, err
	}
	// GetBody lets redirects and transport-level retries replay identical
	// bytes.
	req.ContentLength = int64(body.Len())
	req.GetBody = body.reader
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "*/*")
	req.Header.Set("User-Agent", c.userAgent)
	if c.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	// Drain a little so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, data, nil
}

func (c *Client) logResponse(route backfill.Route, status int, v verdict, events, attempt int) {
	action := map[kind]string{
		kindPartial:  "reject listed, resend rest",
		kindSplit:    "split",
		kindThrottle: "pause listed, resend rest",
		kindRetry:    "retry",
		kindResplit:  "split to the project ceiling",
		kindFatal:    "fatal",
	}[v.kind]
	if v.kind == kindSplit && events == 1 {
		action = "reject"
	}
	attrs := []any{
		slog.String(logRoute, route.String()),
		slog.Int(logStatus, status),
		slog.String(logError, v.message),
		slog.Int(logEvents, events),
		slog.Int(logAttempt, attempt),
		slog.String(logAction, action),
	}
	if len(v.rejected) > 0 {
		attrs = append(attrs, slog.Int(logRejected, len(v.rejected)))
	}
	if len(v.throttled) > 0 {
		attrs = append(attrs, slog.Int(logThrottled, len(v.throttled)))
	}
	if len(v.parked) > 0 {
		attrs = append(attrs, slog.Int(logParked, len(v.parked)))
	}
	level := slog.LevelWarn
	if v.kind == kindFatal {
		level = slog.LevelError
	}
	c.log.Log(context.Background(), level, "amplitude response", attrs...)
}
