package backfill

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Position locates one record in its source object. Positions totally order
// records across a run: objects sort by URL, records by index.
type Position struct {
	// Object is the canonical URL of the source object, without query
	// parameters (for example "s3://bucket/events/part-1.jsonl.gz" or
	// "file:///data/events.jsonl").
	Object string `json:"object"`
	// Record is the 0-based index of the record inside Object.
	Record int64 `json:"record"`
	// Offset is the byte offset of the record's first byte in the
	// decompressed stream, or -1 when the format has none (Parquet).
	Offset int64 `json:"offset"`
	// Line is the 1-based line number where the record starts, for text
	// formats (JSON lines, JSON array, CSV). 0 when not applicable.
	Line int64 `json:"line,omitempty"`
	// RowGroup and Row locate a Parquet record: Row is the 0-based row inside
	// RowGroup. Both are 0 for other formats; use Line to tell them apart.
	RowGroup int   `json:"row_group,omitempty"`
	Row      int64 `json:"row,omitempty"`
}

// String renders the position for humans: "OBJECT line 17" for text formats,
// "OBJECT row group 2 row 5" for Parquet, "OBJECT record 9" otherwise.
func (p Position) String() string {
	switch {
	case p.Line > 0:
		return p.Object + " line " + strconv.FormatInt(p.Line, 10)
	case p.Offset < 0:
		return fmt.Sprintf("%s row group %d row %d", p.Object, p.RowGroup, p.Row)
	default:
		return p.Object + " record " + strconv.FormatInt(p.Record, 10)
	}
}

// Record is one source record as the reader produced it: a single JSON
// object, whatever the source format (CSV rows and Parquet rows are converted
// to JSON objects by the reader).
type Record struct {
	Pos  Position
	Data []byte
	// Unchecked reports that Data is one line that starts with '{' in valid
	// UTF-8 but has not been checked for JSON syntax: the reader left that
	// to the consumer, which parses it anyway (mapping.Mapper does, and
	// reports a syntax error with the code mapping.CodeInvalidJSON).
	Unchecked bool
}

// RecordHeadroom is the spare capacity readers leave after Record.Data, so
// that a mapper owning the record can splice the fields it adds (insert_id,
// $skip_user_properties_sync) in place instead of copying the event.
const RecordHeadroom = 96

// Event is one Amplitude event ready to send. Raw is the event JSON exactly
// as it goes on the wire; the other fields are extracted once so that later
// stages never parse Raw again.
type Event struct {
	Raw       []byte
	DeviceID  string
	UserID    string
	InsertID  string
	EventType string
	Time      int64 // ms since epoch; 0 when absent
	Pos       Position
	// Profile marks an event made from a profile record (a user's or
	// group's current properties, such as a Mixpanel People or PostHog
	// persons export) rather than from a tracked event. The pipeline
	// settles the profiles read before the first other event ahead of it,
	// so they reach Amplitude before the events that follow them.
	Profile bool
}

// Route is the Amplitude endpoint an event is sent to.
type Route uint8

const (
	// RouteBatch is POST /batch, for bulk and historical loads.
	RouteBatch Route = iota
	// RouteHTTP is POST /2/httpapi, for small, recent partitions.
	RouteHTTP
)

// String returns "batch" or "httpapi", the names used in reports and logs.
func (r Route) String() string {
	if r == RouteHTTP {
		return "httpapi"
	}
	return "batch"
}

// RecordError is a problem with one record: a malformed JSON line, a CSV row
// with the wrong number of columns, invalid UTF-8, an event that fails
// mapping or validation. The record is dead-lettered with Reason and the run
// goes on. Readers return it from Next and stay usable.
type RecordError struct {
	Pos    Position
	Raw    []byte // the offending bytes, when available (may be truncated)
	Reason string // short, human readable, no secrets
}

func (e *RecordError) Error() string { return e.Pos.String() + ": " + e.Reason }

// MaxReason is the longest RecordError.Reason a decoder writes (see
// BoundReason): a parser's message can quote a whole record.
const MaxReason = 200

// BoundReason cuts s to MaxReason bytes, on a rune boundary, marking the cut
// with "...".
func BoundReason(s string) string {
	if len(s) <= MaxReason {
		return s
	}
	s = s[:MaxReason]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// ObjectError is a problem with a whole source object: unreadable, vanished,
// a truncated gzip stream, a corrupt Parquet footer. Records read before it
// stay valid; the rest of the object is abandoned and reported.
type ObjectError struct {
	Object string
	Record int64 // records successfully produced before the error
	Err    error
}

func (e *ObjectError) Error() string {
	return fmt.Sprintf("%s: after %d records: %v", e.Object, e.Record, e.Err)
}

func (e *ObjectError) Unwrap() error { return e.Err }
