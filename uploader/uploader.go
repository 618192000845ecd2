package uploader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/backfillhq/backfill"
)

// Defaults applied by New to zero Options fields.
const (
	// DefaultEndpoint is Amplitude's US base URL.
	DefaultEndpoint = "https://api2.amplitude.com"
	// EUEndpoint is the base URL for EU data-residency projects (EU keys).
	EUEndpoint = "https://api.eu.amplitude.com"
	// DefaultMaxAttempts is how many times one request body is sent before
	// Send gives up with ErrRetriesExhausted; 12 matches the official SDKs.
	DefaultMaxAttempts = 12
	// DefaultBackoffBase is the first retry delay bound of DefaultBackoff.
	DefaultBackoffBase = 100 * time.Millisecond
	// DefaultBackoffCap bounds every DefaultBackoff delay.
	DefaultBackoffCap = 30 * time.Second
	// DefaultThrottlePause is Result.PauseFor after a 429 (V2 docs and SDKs).
	DefaultThrottlePause = 30 * time.Second
	// DefaultRequestTimeout bounds one HTTP exchange of the default client.
	DefaultRequestTimeout = 60 * time.Second
	// DefaultMaxIdleConnsPerHost is the keep-alive pool of the default
	// client; it should be at least the number of lanes.
	DefaultMaxIdleConnsPerHost = 64
	// DefaultUserAgent is sent when Options.UserAgent is empty.
	DefaultUserAgent = "backfill"
)

// Paths of the two ingestion APIs, appended to Options.Endpoint.
const (
	BatchPath = "/batch"
	HTTPPath  = "/2/httpapi"
)

// maxResponseBytes bounds how much of a response body is read; documented
// bodies are a few KB even with 2,000 indexes listed.
const maxResponseBytes = 1 << 20

// Log attribute keys.
const (
	logComponent = "component"
	logRoute     = "route"
	logStatus    = "status"
	logError     = "error"
	logEvents    = "events"
	logAttempt   = "attempt"
	logRejected  = "rejected"
	logThrottled = "throttled"
	logParked    = "parked"
	logAction    = "action"
)

// Options configures a Client. The zero value of every field but APIKey
// means "use the default".
type Options struct {
	// Endpoint is the base URL, without path: DefaultEndpoint when empty,
	// EUEndpoint for EU projects, or an emulator's URL.
	Endpoint string
	// APIKey is the project API key (required). It is sent in the body only
	// and never logged or returned in an error.
	APIKey string
	// MinIDLength, when > 0, is sent as options.min_id_length. 0 sends no
	// options object (Amplitude's default minimum is 5).
	MinIDLength int
	// HTTPClient sends the requests. When nil, a client with
	// DefaultRequestTimeout per request and DefaultMaxIdleConnsPerHost
	// keep-alive connections is used. Its Timeout (or the transport's
	// deadlines) is what turns a hung request into a retryable timeout.
	HTTPClient *http.Client
	// Gzip compresses request bodies (Content-Encoding: gzip). Byte limits
	// are still enforced on the uncompressed size.
	Gzip bool
	// MaxAttempts is how many times one request body is sent (the first
	// send included) when it keeps failing with 408, 5xx, a 429 naming no
	// event, a timeout or a network error. 0 means DefaultMaxAttempts.
	// Progress (a 200, a partial 400, a 413 split, a 429 naming events)
	// starts a new body and a new count.
	MaxAttempts int
	// Backoff returns the delay before send number attempt+1 of a body
	// (attempt ≥ 1 failed sends so far). Nil means DefaultBackoff.
	Backoff func(attempt int) time.Duration
	// Sleep waits d or until ctx ends, returning ctx.Err() in that case.
	// Nil means a real timer. Tests inject a recorder.
	Sleep func(ctx context.Context, d time.Duration) error
	// ThrottlePause is reported as Result.PauseFor when events were
	// throttled. 0 means DefaultThrottlePause.
	ThrottlePause time.Duration
	// Logger receives one record per non-200 response, with
	// component=uploader. Nil means slog.Default().
	Logger *slog.Logger
	// UserAgent is the User-Agent header; DefaultUserAgent when empty.
	UserAgent string
}

// Client sends events to Amplitude. It is safe for concurrent use; share one
// per run so lanes share keep-alive connections.
type Client struct {
	batchURL, httpURL string
	key               string
	enc               encoder
	hc                *http.Client
	gzip              bool
	maxAttempts       int
	backoff           func(int) time.Duration
	sleep             func(context.Context, time.Duration) error
	pause             time.Duration
	log               *slog.Logger
	userAgent         string
}

// New validates opts, fills in defaults and returns a Client.
func New(opts Options) (*Client, error) {
	if opts.APIKey == "" {
		return nil, errors.New("uploader: api key is required")
	}
	if strings.TrimSpace(opts.APIKey) != opts.APIKey {
		return nil, errors.New("uploader: api key has leading or trailing spaces")
	}
	endpoint := opts.Endpoint
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("uploader: endpoint %q: want http(s)://host[/base] without query", Redact(endpoint, opts.APIKey))
	}
	switch {
	case opts.MinIDLength < 0:
		return nil, fmt.Errorf("uploader: min id length %d is negative", opts.MinIDLength)
	case opts.MaxAttempts < 0:
		return nil, fmt.Errorf("uploader: max attempts %d is negative", opts.MaxAttempts)
	case opts.ThrottlePause < 0:
		return nil, fmt.Errorf("uploader: throttle pause %v is negative", opts.ThrottlePause)
	}
	base := strings.TrimRight(endpoint, "/")
	// Users often paste an endpoint's full URL: keep its base.
	base = strings.TrimSuffix(strings.TrimSuffix(base, BatchPath), HTTPPath)
	c := &Client{
		batchURL:    base + BatchPath,
		httpURL:     base + HTTPPath,
		key:         opts.APIKey,
		enc:         newEncoder(opts.APIKey, opts.MinIDLength),
		hc:          opts.HTTPClient,
		gzip:        opts.Gzip,
		maxAttempts: opts.MaxAttempts,
		backoff:     opts.Backoff,
		sleep:       opts.Sleep,
		pause:       opts.ThrottlePause,
		log:         opts.Logger,
		userAgent:   opts.UserAgent,
	}
	if c.hc == nil {
		c.hc = defaultHTTPClient()
	}
	if c.maxAttempts == 0 {
		c.maxAttempts = DefaultMaxAttempts
	}
	if c.backoff == nil {
		c.backoff = DefaultBackoff
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	if c.pause == 0 {
		c.pause = DefaultThrottlePause
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With(logComponent, "uploader")
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	return c, nil
}

func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 4 * DefaultMaxIdleConnsPerHost
	t.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	return &http.Client{Transport: t, Timeout: DefaultRequestTimeout}
}

// DefaultBackoff is capped exponential backoff with "equal jitter": the
// delay before send attempt+1 is uniform in [b/2, b], where
// b = min(DefaultBackoffCap, DefaultBackoffBase·2^(attempt-1)). Equal
// jitter rather than full jitter keeps delays growing until the cap, so
// DefaultMaxAttempts really spans an outage of 1-2 minutes (the 11 waits of
// 12 sends total 55-111 s), while still spreading lanes apart.
func DefaultBackoff(attempt int) time.Duration {
	b := backoffBound(attempt)
	return b/2 + rand.N(b/2+1)
}

func backoffBound(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	b := DefaultBackoffBase
	for i := 1; i < attempt && b < DefaultBackoffCap; i++ {
		b *= 2
	}
	return min(b, DefaultBackoffCap)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// CloseIdleConnections closes the keep-alive connections the client is not
// using. Call it when the run is over: each idle connection holds two
// goroutines and its buffers until the transport's idle timeout.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Overhead is the package-level Overhead for this client's key and options.
func (c *Client) Overhead() int { return len(c.enc.prefix) + len(c.enc.suffix) }

// BodySize returns the exact length of the uncompressed request body Send
// would build for events (when they fit in one request).
func (c *Client) BodySize(events []backfill.Event) int {
	n := c.Overhead()
	for i := range events {
		n += len(events[i].Raw)
	}
	if len(events) > 1 {
		n += len(events) - 1
	}
	return n
}

// AppendBody appends the uncompressed request body for events to dst and
// returns the extended slice. Raw event bytes are copied verbatim.
func (c *Client) AppendBody(dst []byte, events []backfill.Event) []byte {
	dst = append(dst, c.enc.prefix...)
	for i := range events {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, events[i].Raw...)
	}
	return append(dst, c.enc.suffix...)
}

// Rejection is an event Amplitude refused; it should be dead-lettered.
type Rejection struct {
	Index  int    // index into the events passed to Send
	Reason string // e.g. "invalid field time", "missing field event_type", "silenced device", "payload too large"
	Status int    // HTTP status that rejected it: 400 or 413
}

// Stats counts what one Send did on the wire.
type Stats struct {
	Requests  int         // HTTP requests attempted
	Retries   int         // re-sends of an identical body after a retryable failure
	Responses map[int]int // responses by HTTP status; 0 counts network errors, timeouts and truncated responses
	Status429 int         // 429 responses (also in Responses[429])
	Splits    int         // 413 responses that halved a request
	BytesSent int64       // request body bytes put on the wire (compressed when Gzip)
}

// Result reports the fate of each event passed to Send, by index. When Send
// returns nil, every index appears in exactly one of Accepted, Rejected,
// Throttled and Parked; when it returns an error, indexes in none of them
// are unsettled. All index lists are sorted.
type Result struct {
	// Accepted events got a 200 and can be checkpointed.
	Accepted []int
	// Rejected events must be dead-lettered with their reason.
	Rejected []Rejection
	// Throttled events got a 429: pause PauseDevices/PauseUsers for
	// PauseFor, then send them again.
	Throttled []int
	// PauseDevices and PauseUsers are the ids of throttled_devices and
	// throttled_users (sorted, deduplicated).
	PauseDevices, PauseUsers []string
	// PauseFor is Options.ThrottlePause when Throttled is non-empty, else 0.
	PauseFor time.Duration
	// Parked events belong to an id over its daily quota (≥ 1 h wait, the
	// window rolls hourly): park or dead-letter them.
	Parked []int
	// QuotaDevices and QuotaUsers are the ids of exceeded_daily_quota_*.
	QuotaDevices, QuotaUsers []string
	// Stats describes the requests made.
	Stats Stats
}

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
	pending := c.presplit(events, all, MaxBytes(route))
	for len(pending) > 0 {
		cur := pending[0]
		v, err := c.exchange(ctx, route, events, cur, &st.res.Stats)
		if err != nil {
			return st.finish(c.pause), err
		}
		r := &st.res
		switch v.kind {
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
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return verdict{}, err
		}
		stats.Requests++
		if attempt > 1 {
			stats.Retries++
		}
		stats.BytesSent += int64(body.Len())
		status, respBody, err := c.do(ctx, target, body)
		var v verdict
		var cause error
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return verdict{}, cerr
			}
			stats.Responses[0]++
			msg := Redact(err.Error(), c.key)
			cause = &redactedCause{msg: msg, err: errors.Unwrap(err)}
			if status != 0 {
				msg = fmt.Sprintf("status %d: read response: %s", status, msg)
			}
			status = 0
			v = verdict{kind: kindRetry, message: msg}
		} else {
			stats.Responses[status]++
			if status == http.StatusTooManyRequests {
				stats.Status429++
			}
			v = classify(status, respBody, events, cur, c.key)
		}
		if v.kind != kindAccept {
			c.logResponse(route, status, v, len(cur), attempt)
		}
		switch v.kind {
		case kindFatal:
			return verdict{}, &StatusError{Status: status, Message: v.message, Err: ErrFatal}
		case kindRetry:
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
