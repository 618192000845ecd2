package reader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/internal/location"

	// Drivers for the s3://, gs:// and azblob:// bucket URLs (each with its
	// cloud's normal credential chain). Local paths and file:// URLs are
	// read with the os package, not fileblob; see the package doc.
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/s3blob"
)

// Defaults for Options fields left at their zero value.
const (
	// DefaultMaxRecordBytes is the longest record accepted: Amplitude's
	// Batch API body limit (20,000,000 bytes); no single event can be larger.
	DefaultMaxRecordBytes = 20_000_000
	// DefaultDelimiter is the CSV field delimiter.
	DefaultDelimiter = ','
	// DefaultParquetBatchRows is the number of rows decoded per Parquet
	// record batch.
	DefaultParquetBatchRows = 1024
	// DefaultParquetBufferSize is the read buffer per Parquet column chunk.
	DefaultParquetBufferSize = 1 << 20
)

// Column types for Options.ColumnTypes.
const (
	ColumnString = "string" // the default: a JSON string
	ColumnInt    = "int"    // a base-10 64-bit integer
	ColumnFloat  = "float"  // a finite 64-bit float
	ColumnBool   = "bool"   // true/false, 1/0, t/f (strconv.ParseBool)
	ColumnJSON   = "json"   // any JSON value, embedded as is
)

// Sentinel errors. Callers branch with errors.Is; the concrete errors carry
// more context.
var (
	// ErrNotFound: a source path or object does not exist (or vanished).
	ErrNotFound = errors.New("not found")
	// ErrNoObjects: a source matched no objects.
	ErrNoObjects = errors.New("no objects match")
	// ErrNotReadable: a listed entry is not a regular file (see
	// Object.NotRead).
	ErrNotReadable = errors.New("not a readable file")
	// ErrUnknownFormat: the format could not be told from the name and was
	// not set in Options.
	ErrUnknownFormat = errors.New("unknown format")
	// ErrBadSource: a source string or glob pattern is malformed.
	ErrBadSource = errors.New("bad source")
	// ErrUnsorted: a store listed keys out of lexicographic order, so the
	// deterministic order resumption relies on cannot be guaranteed.
	ErrUnsorted = errors.New("listing out of order")
	// ErrMalformed: the object's content cannot be decoded any further
	// (corrupt compressed stream, broken JSON array, bad CSV header, corrupt
	// Parquet file).
	ErrMalformed = errors.New("malformed object")
	// ErrRecordTooLarge: a record is longer than Options.MaxRecordBytes and
	// the decoder cannot find where the next one starts.
	ErrRecordTooLarge = errors.New("record too large")
)

// Options configures a Reader. The zero value reads every format with its
// defaults.
type Options struct {
	// Format forces the format of every object; "" detects it from the
	// object name (see Detect).
	Format Format
	// Delimiter is the CSV field delimiter; 0 means DefaultDelimiter. TSV
	// always uses a tab.
	Delimiter rune
	// ColumnTypes declares CSV/TSV column types by header name (Column*
	// constants); undeclared columns are strings. A cell that fails its
	// type is a record error.
	ColumnTypes map[string]string
	// Columns projects Parquet files onto these top-level columns; empty
	// means all columns.
	Columns []string
	// MaxRecordBytes bounds one record (a line, an array element, a CSV
	// row); 0 means DefaultMaxRecordBytes.
	MaxRecordBytes int
	// ParquetBatchRows is the Parquet record batch length; 0 means
	// DefaultParquetBatchRows.
	ParquetBatchRows int
	// ParquetBufferSize is the read buffer per Parquet column; 0 means
	// DefaultParquetBufferSize.
	ParquetBufferSize int
	// DeferJSONCheck leaves the JSON syntax check of JSON-lines records to
	// the consumer: a line is still checked for UTF-8 and for starting with
	// '{', but is then returned with Record.Unchecked set instead of being
	// validated here. A consumer that parses every record anyway (the
	// mapper) saves one scan of the input.
	DeferJSONCheck bool
	// OpenBucket opens a bucket URL such as "s3://bucket?region=eu-west-1".
	// nil means blob.OpenBucket. Tests use it to inject in-memory or fake
	// buckets. The Reader closes the buckets it opened this way.
	OpenBucket func(ctx context.Context, url string) (*blob.Bucket, error)
}

// Reader lists and opens source objects. It caches one opened bucket per
// bucket URL; it is safe for concurrent use.
type Reader struct {
	opts Options

	mu      sync.Mutex
	buckets map[string]*blob.Bucket
	closed  bool
}

// New returns a Reader for opts, or an error if opts are invalid.
func New(opts Options) (*Reader, error) {
	if opts.Format != "" {
		if _, err := ParseFormat(string(opts.Format)); err != nil {
			return nil, err
		}
	}
	for col, typ := range opts.ColumnTypes {
		switch typ {
		case "", ColumnString, ColumnInt, ColumnFloat, ColumnBool, ColumnJSON:
		default:
			return nil, fmt.Errorf("column %q: unknown type %q (want string, int, float, bool or json)", col, typ)
		}
	}
	if opts.Delimiter == 0 {
		opts.Delimiter = DefaultDelimiter
	}
	if opts.Delimiter == '"' || opts.Delimiter == '\r' || opts.Delimiter == '\n' || opts.Delimiter < 0 {
		return nil, fmt.Errorf("invalid delimiter %q", opts.Delimiter)
	}
	if opts.MaxRecordBytes < 0 || opts.ParquetBatchRows < 0 || opts.ParquetBufferSize < 0 {
		return nil, errors.New("negative size option")
	}
	if opts.MaxRecordBytes == 0 {
		opts.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if opts.ParquetBatchRows == 0 {
		opts.ParquetBatchRows = DefaultParquetBatchRows
	}
	if opts.ParquetBufferSize == 0 {
		opts.ParquetBufferSize = DefaultParquetBufferSize
	}
	if opts.OpenBucket == nil {
		opts.OpenBucket = blob.OpenBucket
	}
	return &Reader{opts: opts, buckets: map[string]*blob.Bucket{}}, nil
}

// Close closes every cached bucket. Decoders still open must not be used
// afterwards.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	urls := make([]string, 0, len(r.buckets))
	for u := range r.buckets {
		urls = append(urls, u)
	}
	sort.Strings(urls)
	var errs []error
	for _, u := range urls {
		if err := r.buckets[u].Close(); err != nil {
			errs = append(errs, fmt.Errorf("close bucket %s: %w", location.Display(u), err))
		}
		delete(r.buckets, u)
	}
	return errors.Join(errs...)
}

// bucket returns the cached bucket for url, opening it on first use.
func (r *Reader) bucket(ctx context.Context, url string) (*blob.Bucket, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errors.New("reader closed")
	}
	if b, ok := r.buckets[url]; ok {
		return b, nil
	}
	b, err := r.opts.OpenBucket(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", location.Display(url), err)
	}
	r.buckets[url] = b
	return b, nil
}

// Object describes one source object found by a Listing.
type Object struct {
	// URL is the canonical object URL, without query parameters:
	// "s3://bucket/key", "gs://bucket/key", "azblob://container/key" or
	// "file:///abs/path". It is what backfill.Position.Object holds.
	URL string
	// Key is the key inside the bucket, or the absolute path of a local file.
	Key string
	// Size is the stored (possibly compressed) size in bytes.
	Size int64
	// MD5 is the hex MD5 of the content when the store reports it in
	// listings (GCS, S3 single-part uploads, Azure when set), else "".
	MD5 string
	// ModTime is the last modification time.
	ModTime time.Time
	// Fingerprint identifies this version of the object: size and MD5 when
	// known, else size and modification time. A checkpoint that recorded a
	// different fingerprint must not be resumed by record index.
	Fingerprint string
	// Format is Options.Format when set, else the format detected from the
	// name ("" when unknown: opening such an object fails with
	// ErrUnknownFormat).
	Format Format
	// Compression is the compression suggested by the extension. The
	// decoder trusts the magic bytes over it.
	Compression Compression
	// NotRead says why a listed local entry cannot be read (a named pipe,
	// a socket or device, a dangling symbolic link, a symbolic link loop),
	// or is "" for a file. Such an entry is listed rather than skipped so
	// that it is logged and reported as a failed object: Open fails with
	// ErrNotReadable without opening it (a FIFO would block).
	NotRead string

	bucket string // bucket URL with query parameters; "" for local files
}

// fingerprint builds Object.Fingerprint.
func fingerprint(size int64, md5 string, mod time.Time) string {
	if md5 != "" {
		return "size=" + strconv.FormatInt(size, 10) + " md5=" + md5
	}
	return "size=" + strconv.FormatInt(size, 10) + " mtime=" + mod.UTC().Format(time.RFC3339Nano)
}

// Start is where a Decoder begins. The zero value starts at the beginning.
type Start struct {
	// Record is the index of the first record to produce.
	Record int64
	// Offset and Line are those of record Record as reported in its
	// Position. When both are > 0 and the object is an uncompressed text
	// file, the decoder seeks there with a range read; otherwise it decodes
	// from the beginning and skips Record records.
	Offset int64
	Line   int64
}

// StartAt returns the Start that resumes exactly at p's record.
func StartAt(p backfill.Position) Start {
	return Start{Record: p.Record, Offset: p.Offset, Line: p.Line}
}

// objectError wraps err for obj. A missing object or file becomes ErrNotFound.
func objectError(obj string, record int64, err error) *backfill.ObjectError {
	if isNotFound(err) && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return &backfill.ObjectError{Object: obj, Record: record, Err: err}
}

func isNotFound(err error) bool {
	return errors.Is(err, os.ErrNotExist) || gcerrors.Code(err) == gcerrors.NotFound
}
