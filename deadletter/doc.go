// Package deadletter writes and reads the dead-letter file: one JSON line
// per rejected record (undecodable, unmappable, invalid, filtered with
// reporting, or refused by the server), with where it came from, why it was
// rejected and the original record.
//
// A line looks like:
//
//	{"backfill_dead_letter":1,"object":"s3://b/part-1.jsonl","record":16,"line":17,"stage":"validate","reason":"missing event_type","data":{"user_id":"u1"},"time":"2024-05-01T10:00:00Z"}
//
// The field names are a stable format. "data" is the original record when
// it is valid JSON, otherwise the raw bytes as a JSON string (invalid UTF-8
// replaced by U+FFFD, the exact bytes then in "data_base64"). Entries of
// the server stage also carry "data_source": "source" when "data" is the
// source record (then "sent" is the event as it was sent), "mapped" when
// the source record could not be read again and "data" is the event as
// sent ("data_source_reason" says why). The package never sees the API
// key, so it cannot write it; reasons coming from server responses must
// not contain it either.
//
// # Resumption
//
// A resumed run processes again every record that was not settled in the
// last checkpoint, including ones already dead-lettered after it. To avoid
// duplicate lines the checkpoint stores the file's size (Writer.Size taken
// together with the tracker snapshot, then made durable with Sync) and the
// resumed run opens the file with Open(path, savedSize), which truncates it
// back to that size.
//
// # Errors
//
// Open returns ErrShorter when the file is shorter than the size to
// truncate to (it was edited or replaced since the checkpoint). Reader
// returns ErrCorrupt, with the line number, for a line that is not a
// dead-letter entry.
package deadletter
