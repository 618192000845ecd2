package uploader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/amplitude"
	"github.com/backfillhq/backfill/ceiling"
	"github.com/backfillhq/backfill/internal/location"
	"github.com/backfillhq/backfill/internal/redact"
)

// Defaults applied by New to zero Options fields.
const (
	// DefaultEndpoint is Amplitude's US base URL.
	DefaultEndpoint = amplitude.USEndpoint
	// DefaultMaxAttempts is how many times one request body is sent before
	// Send gives up with ErrRetriesExhausted; 12 matches the official SDKs.
	DefaultMaxAttempts = 12
	// DefaultBackoffBase is the first retry delay bound of DefaultBackoff.
	DefaultBackoffBase = 100 * time.Millisecond
	// DefaultBackoffCap bounds every DefaultBackoff delay.
	DefaultBackoffCap = 30 * time.Second
	// DefaultThrottlePause is Result.PauseFor after a 429 (V2 docs and SDKs).
	DefaultThrottlePause = amplitude.ThrottlePause
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
	// amplitude.EUEndpoint for EU projects, or an emulator's URL.
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
	// Ceilings are the project-wide ceilings of each route (indexed by
	// backfill.Route), shared by every caller: every request on the wire,
	// retries included, waits for its route's ceiling first, no request
	// carries more than its MaxEvents, and each response is reported to it.
	// A 429 naming none of the request's ids that the ceiling absorbs (it
	// lowered itself) is resent at the lower rate without counting against
	// MaxAttempts. Nil means no ceiling, and such a 429 is retried with
	// backoff like a 5xx.
	Ceilings [2]*ceiling.Limiter
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
	ceilings          [2]*ceiling.Limiter
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
	u, err := location.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.RawQuery != "" {
		return nil, fmt.Errorf("uploader: endpoint %q: want http(s)://host[/base] without query", redact.Text(endpoint, opts.APIKey))
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
		ceilings:    opts.Ceilings,
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
		c.sleep = backfill.Sleep
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

// CloseIdleConnections closes the keep-alive connections the client is not
// using. Call it when the run is over: each idle connection holds two
// goroutines and its buffers until the transport's idle timeout.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Overhead returns the bytes a request body adds around its events for
// this client's key and min_id_length: the api_key prefix, the events array
// brackets and the options object. A body of n ≥ 1 events is exactly
// Overhead + Σ len(Raw) + (n-1) bytes long (one comma between events); the
// pipeline gives it to the chunker to size requests.
func (c *Client) Overhead() int { return len(c.enc.prefix) + len(c.enc.suffix) }

// Rejection is an event Amplitude refused; it should be dead-lettered.
type Rejection struct {
	Index  int    // index into the events passed to Send
	Reason string // e.g. "invalid field time", "missing field event_type", "silenced device", "payload too large"
	Status int    // HTTP status that rejected it: 400 or 413
}

// Stats counts what one Send did on the wire.
type Stats struct {
	Requests   int         // HTTP requests attempted
	Retries    int         // re-sends of an identical body after a retryable failure
	Responses  map[int]int // responses by HTTP status; 0 counts network errors, timeouts and truncated responses
	Status429  int         // 429 responses (also in Responses[429])
	Project429 int         // 429 responses naming none of the request's ids (also in Status429)
	Splits     int         // 413 responses that halved a request
	BytesSent  int64       // request body bytes put on the wire (compressed when Gzip)
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
