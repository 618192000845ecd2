// Package validate checks Amplitude events before they are sent, exactly as
// amplitude-api.md §4 and §12.3 describe, and repairs what Amplitude itself
// would repair, so that no request is spent on an event the server rejects.
//
// A Validator works on a parsed event (a *fastjson.Value). Check is
// read-only: it returns a Report listing the repairs the event needs, or an
// *Error when the event must be rejected. AppendEvent encodes the event with
// those repairs applied. Event does all three on raw JSON bytes.
//
// # Policy
//
//   - event_type: present, a string, not blank, not one of the reserved
//     "[Amplitude] ..." types. Otherwise rejected.
//   - user_id / device_id: must be strings. An id shorter than MinIDLength
//     runes is rejected (CodeIDTooShort), even when the other id is valid:
//     Amplitude answers it with 400 events_with_invalid_id_lengths (public
//     SDK issues show it for a short user_id next to a valid device_id), and
//     stripping it would move the user's events to a bare device without a
//     trace; the reason tells to lower MinIDLength (--min-id-length). An
//     empty id, or one equal to a blocked value (compared case-insensitively
//     after trimming spaces, so "NULL" and " None " are blocked too), means
//     "no id" and is removed from the event (a repair, counted in
//     Report.StrippedIDs). If no id is left the event is rejected. An id
//     longer than MaxStringLength is rejected rather than truncated, since a
//     truncated id could merge two users.
//   - time: integer milliseconds since the epoch, not before MinTime
//     (2000-01-01 by default: an earlier value is nearly always seconds sent
//     as milliseconds) and not more than MaxFuture (366 days) after Now.
//     A missing time is rejected unless AllowMissingTime is set: Amplitude
//     would stamp it with the upload time, which is wrong for a backfill.
//   - Known top-level fields must have their documented JSON type (strings,
//     integers, numbers, booleans, objects); null means absent.
//   - Strings longer than MaxStringLength (1024) runes anywhere in the event
//     are truncated to that many runes (a repair, counted in
//     Report.Truncated), like the official SDKs do; insert_id is rejected
//     instead. Object keys are not truncated.
//   - Objects and arrays nested deeper than MaxDepth (40) levels, and
//     objects with more than MaxKeys (1024) keys, are rejected: silently
//     dropping a whole property object (what the SDKs do) would lose data
//     without a trace.
//
// # Errors
//
// Rejections are *Error values carrying a stable Code and a human reason
// that names the field; errors.Is(err, ErrInvalid) is true for all of them.
package validate
