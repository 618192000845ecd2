package deadletter

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/backfillhq/backfill"
)

// FormatVersion is the value of "backfill_dead_letter" in every line.
const FormatVersion = 1

var (
	// ErrShorter means the file is shorter than the size Open was asked to
	// truncate it to.
	ErrShorter = errors.New("dead-letter file shorter than checkpoint")
	// ErrCorrupt means a line is not a dead-letter entry.
	ErrCorrupt = errors.New("corrupt dead-letter line")
	// ErrClosed means the Writer was closed.
	ErrClosed = errors.New("dead-letter writer closed")
)

// Stage is the pipeline stage that rejected a record.
type Stage string

// Stages.
const (
	StageDecode   Stage = "decode"   // the reader could not decode the record
	StageMap      Stage = "map"      // mapping to an Amplitude event failed
	StageValidate Stage = "validate" // the event failed local validation
	StageFilter   Stage = "filter"   // a filter rule rejected it
	StageServer   Stage = "server"   // Amplitude refused it (400, 413, quota)
)

// Entry is one dead-letter line. The JSON names are a stable format.
type Entry struct {
	// Version is always FormatVersion; it marks the line as ours.
	Version int `json:"backfill_dead_letter"`
	// Object is the source object URL.
	Object string `json:"object"`
	// Record is the 0-based record index in Object.
	Record int64 `json:"record"`
	// Line is the 1-based line for text formats.
	Line int64 `json:"line,omitempty"`
	// RowGroup and Row locate a Parquet record.
	RowGroup int   `json:"row_group,omitempty"`
	Row      int64 `json:"row,omitempty"`
	// Stage is the stage that rejected the record.
	Stage Stage `json:"stage"`
	// Reason is a short human-readable cause.
	Reason string `json:"reason"`
	// Status is the HTTP status for StageServer, 0 otherwise.
	Status int `json:"status,omitempty"`
	// InsertID is the event's insert_id, when one was assigned.
	InsertID string `json:"insert_id,omitempty"`
	// Data is the original record: its JSON when valid, else a JSON string
	// of the raw bytes. Invalid UTF-8 is shown as U+FFFD, so that every
	// line is valid JSON (jq, Python); the exact bytes are then in
	// DataBase64. See RawData.
	Data json.RawMessage `json:"data,omitempty"`
	// DataBase64 holds the record's exact bytes (standard base64) when Data
	// is not a lossless copy of them: invalid UTF-8, or bytes that are not
	// valid JSON and had to be quoted as a string are both restorable
	// from it. Absent when Data is the record as it was.
	DataBase64 []byte `json:"data_base64,omitempty"`
	// DataSource says, for StageServer only, what Data holds: DataSourceRecord
	// (the source record, re-read from its object when the server refused its
	// event) or DataSourceMapped (the event as it was sent, because the
	// source record could not be re-read; DataSourceReason says why).
	DataSource string `json:"data_source,omitempty"`
	// DataSourceReason is why Data is not the source record
	// (DataSourceMapped): the object changed or vanished since it was read,
	// the record is no longer at its position, the run was stopped.
	DataSourceReason string `json:"data_source_reason,omitempty"`
	// Sent is, for StageServer with DataSourceRecord, the event as it was
	// sent (after mapping, validation repairs and the added fields), which
	// is what the server's reason is about. Re-feeding ignores it.
	Sent json.RawMessage `json:"sent,omitempty"`
	// Time is when the record was rejected (set by Write when zero).
	Time time.Time `json:"time"`
}

// Values of Entry.DataSource.
const (
	DataSourceRecord = "source" // Data is the source record
	DataSourceMapped = "mapped" // Data is the event as sent
)

// Unwrap returns the record a dead-letter line holds (Entry.Bytes) when
// data is one, else data itself: a record re-read from a dead-letter file
// that was fed back is its inner record, so that entries never nest.
func Unwrap(data []byte) []byte {
	if !bytes.Contains(data, []byte(`"backfill_dead_letter"`)) {
		return data
	}
	var e Entry
	if json.Unmarshal(data, &e) != nil || e.Version != FormatVersion || len(e.Data) == 0 && e.DataBase64 == nil {
		return data
	}
	return e.Bytes()
}

// NewEntry returns an entry for the record at pos with its original bytes.
func NewEntry(pos backfill.Position, stage Stage, reason string, data []byte) Entry {
	return Entry{
		Version:  FormatVersion,
		Object:   pos.Object,
		Record:   pos.Record,
		Line:     pos.Line,
		RowGroup: pos.RowGroup,
		Row:      pos.Row,
		Stage:    stage,
		Reason:   reason,
		Data:     RawData(data),
		// A record that is not valid UTF-8 JSON is quoted or repaired in
		// Data, so its exact bytes go beside it.
		DataBase64: lossless(data),
	}
}

// lossless returns a copy of data when RawData cannot hold it exactly: it
// is not valid JSON (Data is then a JSON string of it, which keeps valid
// UTF-8 text but not invalid bytes), or not valid UTF-8.
func lossless(data []byte) []byte {
	if len(data) == 0 || utf8.Valid(data) {
		return nil
	}
	return bytes.Clone(data)
}

// Bytes returns the record's exact bytes: DataBase64 when present, else
// the text of a string Data, else Data itself.
func (e Entry) Bytes() []byte {
	if e.DataBase64 != nil {
		return e.DataBase64
	}
	var s string
	if len(e.Data) > 0 && e.Data[0] == '"' && json.Unmarshal(e.Data, &s) == nil {
		return []byte(s)
	}
	return e.Data
}

// Position returns the entry's source position (Offset is not stored and
// is -1).
func (e Entry) Position() backfill.Position {
	return backfill.Position{Object: e.Object, Record: e.Record, Offset: -1, Line: e.Line, RowGroup: e.RowGroup, Row: e.Row}
}

// RawData returns data itself when it is valid JSON, and otherwise data as
// a JSON string (invalid UTF-8 replaced by U+FFFD). Empty data gives nil.
func RawData(data []byte) json.RawMessage {
	if len(data) == 0 {
		return nil
	}
	if json.Valid(data) {
		// encoding/json does not check UTF-8: a valid document may hold
		// invalid bytes inside its strings, which would make the line
		// invalid JSON for every strict reader. They can only be in
		// strings, so U+FFFD keeps the document valid.
		return bytes.ToValidUTF8(data, []byte(string(utf8.RuneError)))
	}
	s, _ := json.Marshal(string(bytes.ToValidUTF8(data, []byte(string(utf8.RuneError)))))
	return s
}

// Writer appends entries to a dead-letter file. Writes are buffered; Sync
// makes them durable. It is safe for concurrent use.
type Writer struct {
	mu     sync.Mutex
	path   string
	f      *os.File
	w      *bufio.Writer
	size   int64 // bytes written, buffered or not
	err    error // sticky write error
	closed bool
	// Now is the clock used for entries without a Time. Default time.Now.
	// Set it before the first Write.
	Now func() time.Time
}

// Open opens the dead-letter file at path for appending, creating it and
// its parent directories as needed (the file is private to its owner).
//
// If truncateTo >= 0 the file is first truncated to truncateTo bytes: that
// is how a resume drops the lines written after the checkpoint it resumes
// from. A file shorter than truncateTo gives ErrShorter. If truncateTo < 0
// the file is kept, except that a torn last line (no trailing newline, left
// by a crash during a write) is cut off.
func Open(path string, truncateTo int64) (*Writer, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open dead-letter file: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open dead-letter file: %w", err)
	}
	size, err := prepare(f, truncateTo)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open dead-letter file %s: %w", path, err)
	}
	return &Writer{path: path, f: f, w: bufio.NewWriterSize(f, 64<<10), size: size}, nil
}

// prepare truncates f as Open documents and returns its resulting size.
func prepare(f *os.File, truncateTo int64) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	if truncateTo < 0 {
		truncateTo, err = lastLineEnd(f, size)
		if err != nil {
			return 0, err
		}
	} else if truncateTo > size {
		return 0, fmt.Errorf("%w: %d bytes, checkpoint says %d; was it edited or replaced?", ErrShorter, size, truncateTo)
	}
	if truncateTo == size {
		return size, nil
	}
	if err := f.Truncate(truncateTo); err != nil {
		return 0, err
	}
	return truncateTo, f.Sync()
}

// lastLineEnd returns the length of f up to and including its last newline.
func lastLineEnd(f *os.File, size int64) (int64, error) {
	buf := make([]byte, 32<<10)
	for end := size; end > 0; {
		start := max(end-int64(len(buf)), 0)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && err != io.EOF {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// Path returns the file's path.
func (w *Writer) Path() string { return w.path }

// Write appends e as one line. Version is set to FormatVersion and a zero
// Time to the current time. The line is buffered until Sync or Close.
func (w *Writer) Write(e Entry) error {
	e.Version = FormatVersion
	if e.Time.IsZero() {
		now := time.Now
		if w.Now != nil {
			now = w.Now
		}
		e.Time = now().UTC()
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&e); err != nil { // Encode compacts Data and adds '\n'
		return fmt.Errorf("encode dead-letter entry %s record %d: %w", e.Object, e.Record, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	n, err := w.w.Write(buf.Bytes())
	w.size += int64(n)
	if err != nil {
		w.err = fmt.Errorf("write dead-letter file %s: %w", w.path, err)
		return w.err
	}
	return nil
}

// Size returns the file's logical size: every byte written so far,
// buffered or not. Record it in the checkpoint together with the settled
// positions, then call Sync before saving the checkpoint.
func (w *Writer) Size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size
}

// Sync flushes buffered lines and fsyncs the file. It returns the durable
// size, which equals Size at the time of the call.
func (w *Writer) Sync() (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.size, ErrClosed
	}
	return w.size, w.sync()
}

func (w *Writer) sync() error {
	if w.err != nil {
		return w.err
	}
	if err := w.w.Flush(); err != nil {
		w.err = fmt.Errorf("write dead-letter file %s: %w", w.path, err)
		return w.err
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync dead-letter file %s: %w", w.path, err)
	}
	return nil
}

// Close syncs and closes the file. It is idempotent.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.sync()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close dead-letter file %s: %w", w.path, cerr)
	}
	return err
}
