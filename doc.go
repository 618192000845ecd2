// Package backfill moves historical analytics events from files and object
// storage into Amplitude's Batch and HTTP V2 ingestion APIs.
//
// The root package holds the shared vocabulary of the pipeline (Position,
// Record, Event, Route, Outcome, the error types every stage agrees on).
// Goroutines are started in one place, pipeline.Run, which wires reader ->
// mapping/validation -> chunker lanes -> uploader -> settled positions ->
// checkpoint; package job builds a run from a configuration, and
// cmd/backfill maps its Outcome to the exit code.
//
// Subpackages import this package; this package never imports a backend,
// a file format or HTTP.
//
// # Resumption
//
// Every record carries a Position. A record is settled when the server
// accepted it or it was written to the dead-letter file. Checkpoints store,
// per source object, a low watermark (every record below it is settled) and
// the settled ranges above it, so a killed run resends only what was in
// flight, and Amplitude drops those by insert_id.
package backfill
