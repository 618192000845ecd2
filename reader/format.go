package reader

import (
	"fmt"
	"path"
	"strings"
)

// Format is a source file format.
type Format string

// The formats the reader decodes.
const (
	// FormatJSONLines is one JSON object per line (.jsonl, .ndjson,
	// .json-lines).
	FormatJSONLines Format = "jsonl"
	// FormatJSONArray is a .json file: a JSON array of objects, streamed
	// element by element. A .json file whose first non-space byte is '{' is
	// read as JSON lines instead.
	FormatJSONArray Format = "json"
	// FormatCSV is comma-separated values with a header row.
	FormatCSV Format = "csv"
	// FormatTSV is tab-separated values with a header row.
	FormatTSV Format = "tsv"
	// FormatParquet is Apache Parquet (.parquet, .pq).
	FormatParquet Format = "parquet"
)

// Compression is the compression of a text source.
type Compression string

// The compressions the reader undoes. Whatever the extension says, the
// decoder trusts the magic bytes at the start of the object.
const (
	CompressionNone Compression = ""
	CompressionGzip Compression = "gzip"
	CompressionZstd Compression = "zstd"
)

// ParseFormat parses a format name as given on the command line: one of
// jsonl (alias ndjson), json, csv, tsv, parquet (alias pq). The empty string
// means "detect from the extension" and is returned as "".
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return "", nil
	case "jsonl", "ndjson", "json-lines", "jsonlines":
		return FormatJSONLines, nil
	case "json":
		return FormatJSONArray, nil
	case "csv":
		return FormatCSV, nil
	case "tsv":
		return FormatTSV, nil
	case "parquet", "pq":
		return FormatParquet, nil
	}
	return "", fmt.Errorf("format %q: %w", s, ErrUnknownFormat)
}

// Detect guesses the format and compression of an object from its name:
// .gz and .zst (or .zstd) are stripped first, then .jsonl/.ndjson/.json-lines,
// .json, .csv, .tsv and .parquet/.pq are recognised (case-insensitively).
// The format is "" when the extension is unknown.
func Detect(name string) (Format, Compression) {
	name = strings.ToLower(path.Base(name))
	c := CompressionNone
	switch {
	case strings.HasSuffix(name, ".gz"):
		c, name = CompressionGzip, strings.TrimSuffix(name, ".gz")
	case strings.HasSuffix(name, ".zst"):
		c, name = CompressionZstd, strings.TrimSuffix(name, ".zst")
	case strings.HasSuffix(name, ".zstd"):
		c, name = CompressionZstd, strings.TrimSuffix(name, ".zstd")
	}
	switch path.Ext(name) {
	case ".jsonl", ".ndjson", ".json-lines":
		return FormatJSONLines, c
	case ".json":
		return FormatJSONArray, c
	case ".csv":
		return FormatCSV, c
	case ".tsv":
		return FormatTSV, c
	case ".parquet", ".pq":
		return FormatParquet, c
	}
	return "", c
}
