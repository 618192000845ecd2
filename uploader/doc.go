// Package uploader sends events to Amplitude's Batch (/batch) and HTTP V2
// (/2/httpapi) APIs and turns every documented response into a per-event
// outcome.
//
// A Client is built once with New and shared by all lanes; Send is safe for
// concurrent use and starts no goroutines. Send takes the events of one chunk
// and loops until each event is settled or a run-level error occurs:
//
//   - 200 (any 2xx): the events of the request are Accepted.
//   - 400 listing event indexes (events_with_invalid_fields,
//     events_with_missing_fields, events_with_invalid_id_lengths,
//     silenced_events, silenced_devices): the listed events are Rejected with
//     a reason such as "invalid field time" or "silenced device", and the rest
//     are resent at once. Amplitude ingests nothing from a 400, and the HTTP
//     V2 page says only the first bad index per field is listed, so Send keeps
//     resending until it gets a 200.
//   - 413: the request is halved and both halves are sent, in order. A single
//     event that still gets 413 is Rejected with "payload too large".
//   - 429: events listed in throttled_events, or whose device_id/user_id
//     appears in throttled_devices, throttled_users or
//     exceeded_daily_quota_*, leave the request. Those whose id is over the
//     daily quota are Parked; the others are Throttled and the caller pauses
//     the ids in Result.PauseDevices/PauseUsers for Result.PauseFor before
//     sending them again. The remaining events are resent at once. A 429
//     that names none of the request's events is a project-wide limit: with
//     Options.Ceilings it lowers the route's ceiling and is resent at it
//     without counting against MaxAttempts (until the ceiling is at its
//     floor); without, it is retried with backoff like a 5xx.
//   - 408, 5xx, timeouts, connection errors and truncated responses: the same
//     bytes are resent after Options.Backoff, up to Options.MaxAttempts sends
//     of that body. 503 is documented as "never ingested"; 500/502/504 may
//     have been ingested, which is harmless because Amplitude dedupes on
//     insert_id.
//   - Anything else (403, 400 for a missing field, an invalid API key, an
//     invalid JSON body, a missing body or an invalid path, a 400 that names
//     no event, other unexpected statuses) is fatal.
//
// The status is taken from the HTTP status line, never from the body's
// "code", so a non-JSON body (from a proxy, say) is classified on the status
// alone.
//
// With Options.Ceilings, every request on the wire, retries included, first
// waits for its route's ceiling (package ceiling), is cut to the ceiling's
// MaxEvents, and reports its outcome to it: project-level 429s, 503s, 504s,
// 408s and timeouts as pushback, answers that took the request in as clean.
//
// Request bodies are built by appending each Event.Raw verbatim; events are
// never re-encoded, so a body is exactly Client.Overhead + Σ len(Raw) +
// commas: the chunker packs requests under the route's limit from that sum
// (the pipeline passes Overhead in chunker.Options). Send also splits its
// input by MaxEvents and the route's byte limit before sending, so an
// oversized input costs requests but is never wrong.
//
// # Errors
//
// Send returns ctx.Err() when the context ends, an error wrapping
// ErrRetriesExhausted when one request body failed Options.MaxAttempts times
// in a row, and an error wrapping ErrFatal for responses that no retry can
// fix. Both sentinels come inside a *StatusError carrying the HTTP status and
// Amplitude's error text. The API key never appears in an error or a log
// line: Amplitude echoes it back ("Invalid API key: <key>"), so every server
// text goes through Redact first.
//
// # Resumption
//
// When Send returns an error, Result still lists the events settled before
// it (Accepted and Rejected, and Throttled/Parked ones the caller must
// requeue or park); every other index is unsettled and must be sent again,
// which is safe because Amplitude dedupes on insert_id.
package uploader
