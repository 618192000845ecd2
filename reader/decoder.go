package reader

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/backfillhq/backfill"
)

const (
	bufSize       = 64 << 10 // bufio size for raw and decompressed streams
	sniffLimit    = 64 << 10 // bytes searched for the first non-space byte of .json
	headSize      = 64 << 10 // bytes fetched to prepare a resume seek
	zstdMaxWindow = 128 << 20
)

var (
	magicGzip = []byte{0x1f, 0x8b}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// recordDecoder is one format's decoder over a stream or a Parquet file.
type recordDecoder interface {
	// next returns the next record, a *backfill.RecordError, io.EOF, or
	// any other error, which abandons the object.
	next() (backfill.Record, error)
	// index is the index of the next record next will produce.
	index() int64
}

// Decoder produces the records of one object. It is not safe for concurrent
// use.
type Decoder struct {
	url     string
	skip    int64 // records below this index are read and dropped
	dec     recordDecoder
	closers []io.Closer
	read    func() int64
	err     error // pending object error, reported by the next Next
	done    bool
}

// Open returns a Decoder over obj starting at record start.Record. ctx bounds
// the reads of the object, so it must stay live while the Decoder is used.
//
// Open itself fails only when ctx is done or obj is invalid. Problems with
// the object (missing, unreadable, unknown format, corrupt) are reported by
// the first call to Next as a *backfill.ObjectError.
func (r *Reader) Open(ctx context.Context, obj Object, start Start) (*Decoder, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if obj.URL == "" || obj.Key == "" {
		return nil, errors.New("open: object has no URL or key")
	}
	if start.Record < 0 {
		return nil, fmt.Errorf("open %s: negative start record %d", obj.URL, start.Record)
	}
	d := &Decoder{url: obj.URL, skip: start.Record, read: func() int64 { return 0 }}
	if obj.NotRead != "" {
		d.err = fmt.Errorf("%w: %s", ErrNotReadable, obj.NotRead)
		return d, nil
	}
	if err := r.open(ctx, d, obj, start); err != nil {
		if ctx.Err() != nil {
			d.Close()
			return nil, ctx.Err()
		}
		d.err = err
	}
	return d, nil
}

// Next returns the next record, or:
//   - a *backfill.RecordError for a bad record; the Decoder stays usable,
//     keep calling Next;
//   - a *backfill.ObjectError when the rest of the object cannot be read;
//     every later call returns io.EOF;
//   - io.EOF after the last record;
//   - ctx.Err() when ctx is done.
//
// Record.Data is a fresh copy the caller may keep.
func (d *Decoder) Next(ctx context.Context) (backfill.Record, error) {
	if d.done {
		return backfill.Record{}, io.EOF
	}
	if d.err != nil {
		return backfill.Record{}, d.fail(d.err)
	}
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return backfill.Record{}, err
			}
		}
		rec, err := d.dec.next()
		if err == nil {
			if rec.Pos.Record < d.skip {
				continue
			}
			return rec, nil
		}
		switch re := recordError(err); {
		case re != nil:
			if re.Pos.Record < d.skip {
				continue
			}
			return backfill.Record{}, err
		case err == io.EOF:
			d.done = true
			return backfill.Record{}, io.EOF
		case ctx.Err() != nil:
			return backfill.Record{}, ctx.Err()
		default:
			return backfill.Record{}, d.fail(err)
		}
	}
}

// recordError returns err's *backfill.RecordError, or nil. It is a function
// of its own so that Next's happy path does not move a pointer to the heap
// for errors.As on every record (hence no inlining either).
//
//go:noinline
func recordError(err error) *backfill.RecordError {
	var re *backfill.RecordError
	if errors.As(err, &re) {
		return re
	}
	return nil
}

func (d *Decoder) fail(err error) error {
	d.done = true
	var oe *backfill.ObjectError
	if errors.As(err, &oe) {
		return oe
	}
	rec := d.skip
	if d.dec != nil {
		rec = max(rec, d.dec.index())
	}
	return objectError(d.url, rec, err)
}

// BytesRead returns how many stored (possibly compressed) bytes of the
// object have been consumed so far, counting a skipped prefix on resume, for
// progress reporting against Object.Size.
func (d *Decoder) BytesRead() int64 { return d.read() }

// Close releases the object's reader and decompressor.
func (d *Decoder) Close() error {
	var errs []error
	for i := len(d.closers) - 1; i >= 0; i-- {
		if err := d.closers[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	d.closers = nil
	d.done = true
	return errors.Join(errs...)
}

// open sets up d's record decoder.
func (r *Reader) open(ctx context.Context, d *Decoder, obj Object, start Start) error {
	format := r.opts.Format
	if format == "" {
		format = obj.Format
	}
	if format == "" {
		format, _ = Detect(obj.Key)
	}
	if format == "" {
		return fmt.Errorf("%w: cannot tell the format of %s from its name (pass --format, or a glob that leaves it out)", ErrUnknownFormat, obj.Key)
	}
	st, err := r.store(ctx, obj)
	if err != nil {
		return err
	}
	if format == FormatParquet {
		return r.openParquet(ctx, d, obj, st, start)
	}
	return r.openText(ctx, d, obj, st, format, start)
}

// store reads one object: a local file or a bucket key.
type store interface {
	// stream returns the object's bytes from off to the end.
	stream(ctx context.Context, off int64) (io.ReadCloser, error)
	// head returns the first n bytes of the object (fewer if it is shorter).
	head(ctx context.Context, n int) ([]byte, error)
}

func (r *Reader) store(ctx context.Context, obj Object) (store, error) {
	if obj.bucket == "" && strings.HasPrefix(obj.URL, "file://") {
		return localStore(obj.Key), nil
	}
	bucketURL := obj.bucket
	if bucketURL == "" { // an Object built by hand from a URL
		scheme, rest, ok := strings.Cut(obj.URL, "://")
		host, _, _ := strings.Cut(rest, "/")
		if !ok || host == "" {
			return nil, fmt.Errorf("%w: object URL %q", ErrBadSource, obj.URL)
		}
		bucketURL = scheme + "://" + host
	}
	b, err := r.bucket(ctx, bucketURL)
	if err != nil {
		return nil, err
	}
	return &bucketStore{b: b, key: obj.Key}, nil
}

type localStore string

func (s localStore) stream(_ context.Context, off int64) (io.ReadCloser, error) {
	f, err := os.Open(string(s))
	if err != nil {
		return nil, err
	}
	if off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

func (s localStore) head(_ context.Context, n int) ([]byte, error) {
	f, err := os.Open(string(s))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, int64(n)))
}

// countingReader counts the bytes read through it. The count is atomic:
// progress displays read it from another goroutine (Decoder.BytesRead).
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func newCountingReader(r io.Reader, n int64) *countingReader {
	c := &countingReader{r: r}
	c.n.Store(n)
	return c
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// textConfig is what the text decoders need from Options.
type textConfig struct {
	url       string
	maxRecord int
	deferJSON bool // Options.DeferJSONCheck
}

// startState is where a text decoder starts in the decompressed stream.
type startState struct {
	off, line, record int64
}

// openText opens a JSON lines, JSON array, CSV or TSV object.
func (r *Reader) openText(ctx context.Context, d *Decoder, obj Object, st store, format Format, start Start) error {
	cfg := textConfig{url: obj.URL, maxRecord: r.opts.MaxRecordBytes, deferJSON: r.opts.DeferJSONCheck}
	if start.Record > 0 && start.Offset > 0 && start.Line > 0 {
		if ok, err := r.openTextAt(ctx, d, st, format, start, cfg); ok || err != nil {
			return err
		}
	}
	raw, err := st.stream(ctx, 0)
	if err != nil {
		return err
	}
	d.closers = append(d.closers, raw)
	cnt := newCountingReader(raw, 0)
	d.read = cnt.n.Load
	br := bufio.NewReaderSize(cnt, rawBufSize(obj.Size))
	head, _ := br.Peek(len(magicZstd)) // short or failed peeks surface on read
	text := br
	switch {
	case bytes.HasPrefix(head, magicGzip):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%w: gzip: %v", ErrMalformed, err)
		}
		// gzip's Close repeats the last decode error, already reported.
		d.closers = append(d.closers, closerFunc(func() error { zr.Close(); return nil }))
		text = bufio.NewReaderSize(zr, bufSize)
	case bytes.HasPrefix(head, magicZstd):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return fmt.Errorf("%w: zstd: %v", ErrMalformed, err)
		}
		rc := zr.IOReadCloser()
		d.closers = append(d.closers, rc)
		text = bufio.NewReaderSize(rc, bufSize)
	}
	if format == FormatJSONArray {
		p, _ := text.Peek(sniffLimit)
		format, _ = sniffJSON(p)
	}
	return r.textDecoder(d, text, format, nil, cfg, startState{line: 1})
}

// rawBufSize is the read buffer for an object's stored bytes: bufSize, or
// less for an object known to be smaller, so that a bucket of thousands of
// tiny objects does not allocate and clear 64 KiB for each. A size that
// was wrong (the object grew) costs nothing but speed: lines longer than
// the buffer are read in pieces.
func rawBufSize(size int64) int {
	if size > 0 && size < bufSize {
		return max(int(size)+1, 4096)
	}
	return bufSize
}

// openTextAt resumes an uncompressed text object at start.Offset with a
// range read. It first fetches a bounded head of the object to check the
// magic bytes, tell a JSON array from JSON lines and read a CSV header; it
// reports false (decode from the start instead) when the object is
// compressed or the head does not settle those questions.
func (r *Reader) openTextAt(ctx context.Context, d *Decoder, st store, format Format, start Start, cfg textConfig) (bool, error) {
	head, err := st.head(ctx, headSize)
	if err != nil {
		return false, err
	}
	whole := len(head) < headSize
	if bytes.HasPrefix(head, magicGzip) || bytes.HasPrefix(head, magicZstd) {
		return false, nil
	}
	if format == FormatJSONArray {
		var found bool
		if format, found = sniffJSON(head); !found && !whole {
			return false, nil
		}
	}
	var header []string
	if format == FormatCSV || format == FormatTSV {
		cr := newCSVReader(bytes.NewReader(head), r.csvConfig(cfg, format))
		rec, err := cr.Read()
		if err != nil || !whole && cr.InputOffset() >= int64(len(head)) {
			return false, nil // the header may be cut: read it the long way
		}
		header = bytesClone(rec)
	}
	raw, err := st.stream(ctx, start.Offset)
	if err != nil {
		return false, err
	}
	d.closers = append(d.closers, raw)
	cnt := newCountingReader(raw, start.Offset)
	d.read = cnt.n.Load
	at := startState{off: start.Offset, line: start.Line, record: start.Record}
	return true, r.textDecoder(d, bufio.NewReaderSize(cnt, bufSize), format, header, cfg, at)
}

func (r *Reader) textDecoder(d *Decoder, text *bufio.Reader, format Format, header []string, cfg textConfig, at startState) error {
	switch format {
	case FormatJSONLines:
		d.dec = newJSONLines(text, cfg, at)
	case FormatJSONArray:
		d.dec = newJSONArray(text, cfg, at)
	case FormatCSV, FormatTSV:
		d.dec = newCSV(text, r.csvConfig(cfg, format), header, at)
	default:
		return fmt.Errorf("%w: %q", ErrUnknownFormat, format)
	}
	return nil
}

// sniffJSON tells a JSON array from JSON lines by the first non-space byte
// of p (after an optional UTF-8 byte order mark); found is false when p is
// all space.
func sniffJSON(p []byte) (f Format, found bool) {
	p = bytes.TrimPrefix(p, bom)
	i := bytes.IndexFunc(p, func(r rune) bool { return !isSpace(r) })
	if i >= 0 && p[i] == '[' {
		return FormatJSONArray, true
	}
	return FormatJSONLines, i >= 0
}

var bom = []byte{0xef, 0xbb, 0xbf}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
