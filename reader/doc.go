// Package reader lists source objects and decodes their records into JSON
// objects, each with its backfill.Position. It knows nothing of HTTP,
// Amplitude limits, chunking or checkpoint storage.
//
// # Sources
//
// A source is a local path (a file, or a directory listed recursively), a
// file:// URL, or a gocloud.dev/blob bucket URL: s3://bucket/prefix,
// gs://bucket/prefix, azblob://container/prefix, with gocloud's query
// parameters (region, endpoint, use_path_style, ...) and each cloud's normal
// credential chain. Options.OpenBucket can replace the opener (tests inject
// fakes). One bucket is opened per distinct bucket URL and reused until
// Reader.Close.
//
// A bucket path is a key prefix: s3://b/events lists events/..., and also
// events.jsonl and events-old/...; end it with "/" to mean a folder. A path
// may hold a glob: "*", "?" and "[...]" match within one path segment, as in
// path.Match, and a "**" segment matches any number of segments
// (s3://b/dt=2024-*/**/part-*.parquet). The bucket is listed from the
// literal prefix before the first metacharacter and keys are filtered
// against the pattern. Query parameters follow the last "?" that is followed
// by "key=value"; a "?" glob in a key is left alone.
//
// Listing skips directory markers (keys ending in "/") and hidden names:
// any path segment that starts with "." or "_" (_SUCCESS, _temporary/,
// .crc) below the part of the source written out literally, so a source
// that names such a file or folder explicitly still lists it.
//
// Objects come in a deterministic order: sources in the order given, keys of
// one source in lexicographic byte order. Cloud listings are streamed page by
// page in the store's order, which is lexicographic; a store that breaks it
// gets ErrUnsorted. Local trees are walked one directory per level, sorted
// so that "a.txt" precedes "a/b" as it would in a bucket. Local paths are
// read with the os package rather than fileblob, whose listing re-walks the
// tree per page and does not sort across directories. Symbolic links to
// files are followed; links to directories are not (they are listed with
// Object.NotRead set, like the other entries that cannot be read).
//
// # Formats
//
// The format comes from Options.Format or the extension after stripping .gz,
// .zst or .zstd (see Detect): JSON lines (.jsonl, .ndjson, .json-lines),
// .json (a JSON array, or JSON lines when the first non-space byte is '{'),
// CSV (.csv), TSV (.tsv) and Parquet (.parquet, .pq). Text objects are
// decompressed by their magic bytes (gzip 1f8b, zstd 28b52ffd), whatever
// their name says.
//
//   - JSON lines: one object per line, lines up to Options.MaxRecordBytes;
//     blank lines are skipped but counted. Record.Data is the trimmed line.
//   - JSON array: streamed element by element; Data is the element's raw
//     bytes (inner whitespace kept); Line is where it starts.
//   - CSV and TSV: a header row, RFC 4180 quoting with multi-line quoted
//     fields (TSV accepts stray quotes). Each row becomes a JSON object in
//     header order: empty cells are omitted, values are strings unless
//     Options.ColumnTypes says int, float, bool or json, and dotted names
//     (event_properties.plan) nest. Interpreting Amplitude fields is the
//     mapping stage's job, not this package's.
//   - Parquet: read through range reads (an io.ReaderAt over the object,
//     never a whole download), row group by row group in record batches,
//     with bounded buffers; Options.Columns projects top-level columns.
//     Structs and maps become objects, lists arrays, nulls are omitted
//     (kept as null inside lists), timestamps become integer milliseconds
//     since the epoch, dates "YYYY-MM-DD", durations integer milliseconds,
//     binary a string when valid UTF-8 and base64 otherwise, decimals
//     numbers, NaN and infinities null.
//
// # Positions and resumption
//
// Record is the 0-based index over all records of the object, bad ones
// included. Text formats set Offset (byte offset of the record's start in
// the decompressed stream) and Line (1-based); Parquet sets Offset -1,
// RowGroup, and Row within it.
//
// Open(ctx, obj, Start{Record: k, ...}) produces records from index k on,
// exactly. With the Offset and Line of record k (StartAt) on an uncompressed
// text object, it seeks there with a range read (CSV reads its header
// first); otherwise it decodes from the start and drops the first k records.
// Parquet jumps to the row group holding k and drops the rows before it.
// The caller must compare Object.Fingerprint with the one it checkpointed:
// a changed object cannot be resumed by position.
//
// # Errors
//
// Decoder.Next returns a *backfill.RecordError for a bad record (malformed
// JSON, not an object, invalid UTF-8, too long, wrong CSV field count, a
// cell failing its type) and stays usable. It returns a
// *backfill.ObjectError when the rest of the object cannot be read (missing
// object: ErrNotFound; corrupt compressed stream or Parquet file, broken
// JSON array structure, bad CSV header: ErrMalformed; unknown format:
// ErrUnknownFormat; an endless CSV quoted field: ErrRecordTooLarge), after
// the records read before it; every later call returns io.EOF. Open reports
// object problems the same way, from the first Next. Listing errors name the
// source (without query parameters).
//
// Nothing in this package starts goroutines, except the Parquet library's
// own internals; decoders are not safe for concurrent use, the Reader is.
package reader
