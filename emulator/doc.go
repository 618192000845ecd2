// Package emulator is an in-process fake of Amplitude's ingestion endpoints,
// POST /batch (Batch Event Upload) and POST /2/httpapi (HTTP V2), built to
// test clients against the wire contract described in amplitude-api.md §11.
//
// A *Server is an http.Handler. It answers on any host, so both the US and
// EU base URLs can point at it, and it never imports the uploader: tests
// exercise the contract, not our own client.
//
// # Request pipeline
//
// Each Amplitude request goes through these steps, and the first failing
// step decides the response. Nothing is ingested unless the answer is 200
// (or an injected ingest-then-fail 5xx):
//
//  1. Path (/batch or /2/httpapi, else 400 "Invalid request path") and
//     method (POST, else 405).
//  2. Injected latency, then injected pre-ingest faults (dropped connection,
//     403, 503, 5xx before ingest).
//  3. Body: gzip is decompressed first; an empty body is 400 "Missing
//     request body", bad JSON 400 "Invalid JSON request body", an unknown
//     Content-Type 400 in Strict mode.
//  4. Decompressed size over the endpoint limit → 413.
//  5. Missing api_key or events → 400 "Request missing required field"
//     with missing_field; unknown key → 400 "Invalid API key: <key>".
//  6. More than 2,000 events → 413; an element that is not an object → 400
//     "Invalid event JSON".
//  7. Per-event checks (a user_id or device_id shorter than
//     options.min_id_length, even next to a valid other id, as public SDK
//     issues show real servers answering; missing event_type, no id,
//     blocked id values, non-integer time, reserved event types, non-string
//     insert_id) → 400 "Invalid field values on some events" listing every
//     offending index ("Invalid id length for user_id or device_id" when
//     short ids are the only problem).
//  8. Silenced devices → 400 "Events silenced for device_id".
//  9. Injected 413 / 429, then per-id throttling and the daily quota → 429.
//  10. Ingest: dedupe, counters, the in-memory log and the Record writer.
//
// # Throttling
//
// One counter per (api_key, device_id) and one per (api_key, user_id) is
// shared by both endpoints; the threshold applied is the one of the endpoint
// that receives the request (BatchEPS or HTTPEPS events/s, averaged over a
// sliding 30 s window kept in 100 ms buckets). A request is throttled when
// adding its events would push any id over threshold×30 events in the
// window; a request holding more events of one id than the window takes
// can never be accepted, and its 429 adds request_exceeds_window_devices,
// request_exceeds_window_users, max_events_per_id_per_window and
// emulator_hint (the emulator's own fields). The daily quota counts the same
// ids over a rolling 24 h window in 1 h buckets and refuses the ids that
// have reached it (a request that crosses it is still accepted), as the docs
// describe. Only events of accepted requests are counted, duplicates
// included (throttling happens before dedupe, as at Amplitude).
//
// # Long strings
//
// String values over MaxStringLength (1,024) characters are accepted and
// stored truncated, as the SDKs truncate; see MaxStringLength.
//
// # Dedupe
//
// Events with an insert_id are deduplicated on (api_key, device_id or "",
// insert_id) for 7 days of the injected clock: the first copy wins, later
// copies still count in events_ingested and in Stats.EventsDuplicate, but
// are neither logged nor recorded.
//
// # Inspection
//
// Outside Amplitude's paths the server offers GET /_emulator/stats (JSON
// Stats), GET /_emulator/events (accepted events as JSON lines) and POST
// /_emulator/reset. Go tests use Events, Stats, Peaks, MaxWindowEPS, Reset,
// FailNext, FailNextAfterIngest and DropNext directly.
//
// The server is safe for concurrent requests. It starts no goroutines.
package emulator
