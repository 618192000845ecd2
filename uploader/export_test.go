package uploader

import (
	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/amplitude"
)

// Limits the tests name here; production code reads them from amplitude.
const (
	MaxHTTPBytes = amplitude.MaxHTTPBytes
	EUEndpoint   = amplitude.EUEndpoint
)

// Overhead returns the bytes a request body adds around its events for the
// given key and min_id_length: the api_key prefix, the events array brackets
// and the options object. A body of n ≥ 1 events is exactly
// Overhead + Σ len(Raw) + (n-1) bytes long (one comma between events).
func Overhead(apiKey string, minIDLength int) int {
	e := newEncoder(apiKey, minIDLength)
	return len(e.prefix) + len(e.suffix)
}

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
