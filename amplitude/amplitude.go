// Package amplitude is the one owner of Amplitude's documented limits and
// of the defaults derived from them (amplitude-api.md §5): the uploader, the
// chunker, the pipeline, the job's validation and the emulator all read
// them from here, so a limit is written once.
//
// It is a leaf: it imports only the root package.
package amplitude

import (
	"time"

	"github.com/backfillhq/backfill"
)

// Hosts.
const (
	// USEndpoint is Amplitude's US base URL, the default endpoint.
	USEndpoint = "https://api2.amplitude.com"
	// EUEndpoint is the base URL for EU data-residency projects (EU keys).
	EUEndpoint = "https://api.eu.amplitude.com"
)

// Documented limits.
const (
	// MaxEvents is the most events one request may carry, on both routes;
	// more is a 413.
	MaxEvents = 2000
	// MaxBatchBytes is the body size limit of /batch (20 MB). Byte limits
	// apply to the uncompressed JSON body: whether Amplitude measures before
	// or after gunzip is undocumented, and uncompressed is the safe reading.
	MaxBatchBytes = 20_000_000
	// MaxHTTPBytes is the body size limit of /2/httpapi (1 MB).
	MaxHTTPBytes = 1_000_000
	// BatchEPS is the per-device and per-user threshold of /batch, in
	// events per second averaged over Window.
	BatchEPS = 1000
	// HTTPEPS is the same threshold on /2/httpapi.
	HTTPEPS = 30
	// Window is the span over which events per id are averaged ("EPDS ...
	// averaged over 30 s").
	Window = 30 * time.Second
	// DailyQuota is how many events one device_id or user_id may send in a
	// rolling 24 h window (in 1 h steps).
	DailyQuota = 500_000
	// ThrottlePause is how long to hold back an id named in a 429 (the V2
	// docs and the SDKs wait 30 s).
	ThrottlePause = 30 * time.Second
	// QuotaPark is how long to hold back an id over its daily quota: the
	// window rolls hourly.
	QuotaPark = time.Hour
	// DedupeWindow is how long Amplitude remembers an insert_id.
	DedupeWindow = 7 * 24 * time.Hour
	// MinIDLength is the minimum user_id/device_id length when a request
	// sets no options.min_id_length.
	MinIDLength = 5
	// MaxStringLength is the longest string value, in characters ("≤ 1024
	// characters", §4); the SDKs truncate longer ones.
	MaxStringLength = 1024
	// HTTPWindowEvents is the most events of one device_id or user_id one
	// /2/httpapi request may carry: HTTPEPS over one Window. A request with
	// more is refused with 429 however long the client waits, so the
	// pipeline never builds one, whatever its pace.
	HTTPWindowEvents = HTTPEPS * int(Window/time.Second)
)

// Defaults derived from the limits.
const (
	// DefaultEPS paces each id on /batch: the 300 events/s per device that
	// Amplitude's backfill guidance recommends.
	DefaultEPS = 300
	// DefaultHTTPEPS paces each id on /2/httpapi: 80% of HTTPEPS, the
	// safety margin for the tail route.
	DefaultHTTPEPS = HTTPEPS * 80 / 100
	// BodyMarginPercent is the share of a route's body limit the pipeline
	// packs requests to, leaving room for the request's own framing.
	BodyMarginPercent = 95
)

// MaxBytes returns the body size limit of route: MaxHTTPBytes for
// backfill.RouteHTTP, MaxBatchBytes otherwise.
func MaxBytes(route backfill.Route) int {
	if route == backfill.RouteHTTP {
		return MaxHTTPBytes
	}
	return MaxBatchBytes
}

// PackBytes returns the body size requests to route are packed to:
// BodyMarginPercent of MaxBytes(route).
func PackBytes(route backfill.Route) int { return MaxBytes(route) * BodyMarginPercent / 100 }

// ShardRate returns the pace of one shard of n over the same ids: rate/n,
// at least 1; a rate of 0 means def, and a negative rate (unpaced) stays
// as it is. n shards each at ShardRate together stay at rate.
func ShardRate(rate, def, n int) int {
	if rate == 0 {
		rate = def
	}
	if rate < 0 || n <= 1 {
		return rate
	}
	return max(1, rate/n)
}
