// Package mapping turns source records (JSON objects from JSON lines, JSON
// arrays, CSV rows or Parquet rows) into validated Amplitude events.
//
// A Mapper applies a Spec: one of the presets shipped in the binary
// (amplitude, amplitude-export, mixpanel, segment, ga4, posthog; see
// Presets and PresetSource) or a mapping file in YAML or JSON that may
// extend a preset. Map is safe for concurrent use: each call borrows a
// fastjson parser and scratch space from a sync.Pool and never decodes into
// map[string]any.
//
// # Fast path
//
// With the amplitude preset (or a spec that extends it with filters only),
// a record that already is a well-typed Amplitude event (every top-level
// key a documented field of its documented type, valid JSON text) is not
// re-encoded: Raw is a copy of the record bytes with insert_id and
// "$skip_user_properties_sync":true spliced in before the final '}' when
// missing. Other records are re-encoded from the mapping; unknown top-level
// keys go into event_properties.
//
// # Insert ids
//
// A source insert_id is kept. Otherwise, for a re-fed dead-letter entry, the
// entry's insert_id; otherwise the spec's insert_id.hash of source fields;
// otherwise DeriveInsertID(rec.Pos), "bf-" + 32 hex digits of
// SHA-256(object URL + "#" + record index). All are deterministic, so a
// record keeps its id across retries, resumes and re-runs.
//
// # Dead-letter re-feed
//
// A record whose top-level "backfill_dead_letter" is 1 is a dead-letter
// entry: Map maps its "data" object (or a JSON string holding one) and, when
// the mapped event has no insert_id, uses the entry's "insert_id". If it
// fails again, the RecordError's Raw is the inner record, so entries never
// nest.
//
// # Shapes, profiles and exclusions
//
// A preset reads every export shape its vendor documents and tells them
// apart per record with rule conditions (when/unless, "*" for a present
// value), so one run can mix them. Records matching the spec's
// profile_when are profiles (Event.Profile): they become $identify events
// without $skip_user_properties_sync and without event_properties.
// Records matching exclude_when were excluded from Amplitude by the source
// itself; Map fails them with ErrSkipped (Options.IncludeExcluded sends
// them). Describe renders a preset field by field, for "backfill presets
// show" and the README.
//
// # Errors
//
// Map returns *Error values. errors.As(err, **backfill.RecordError) gives
// the record error to dead-letter (Reason names the field); errors.Is(err,
// ErrFiltered) marks a record dropped by a filter (Reason "filtered: ..."),
// errors.Is(err, ErrSkipped) one excluded at the source (Reason
// "skipped: ..."; not to be dead-lettered),
// errors.Is(err, ErrRejected) one that cannot be mapped or is invalid, and
// validation failures also match validate.ErrInvalid. Error.Code is a stable
// reason code for counting. Spec loading fails with ErrInvalidSpec or
// ErrUnknownPreset.
package mapping
