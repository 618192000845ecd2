package main

import (
	"os"
	"path/filepath"
	"time"

	"github.com/backfillhq/backfill/fixtures/fixturegen"
	"github.com/klauspost/compress/gzip"
)

// The datasets are fixturegen's events (the generator the tests use), with
// the knobs that make them benchmark-like: events padded to about 440 bytes
// of JSON with nested event_properties (a list, a map), Devices distinct
// devices each with its own user, times 20 ms apart on average.

// Bench event sizes, in bytes of JSON: the standard event, and the small
// and large ones of the shapes.
const (
	eventBytes      = 444
	smallEventBytes = 200
	largeEventBytes = 2000
)

// parquetRowGroup is the row group length of the generated Parquet files
// (close to what Spark writes with default settings for rows of this size).
const parquetRowGroup = 128 * 1024

// dataset describes one generated event stream.
type dataset struct {
	N       int     // events
	Devices int     // distinct devices
	Seed    int64   // same seed, same events
	ZipfS   float64 // >0: device i gets about Top/i^ZipfS events (N is then derived)
	Top     int     // events of the hottest device when ZipfS > 0
}

// options are fixturegen's options for d.
func (d dataset) options() fixturegen.Options {
	return fixturegen.Options{
		N: d.N, Seed: d.Seed, Devices: d.Devices, ZipfS: d.ZipfS, ZipfTop: d.Top,
		TimeStep: 20 * time.Millisecond, EventBytes: eventBytes,
		RowGroupRows: parquetRowGroup, GzipLevel: gzip.DefaultCompression,
	}
}

// csvTypes is the --csv-types value for the generated CSV files.
var csvTypes = fixturegen.CSVColumnTypesFlag()

// formats are the dataset files of a throughput run, by suffix.
var formats = []string{"jsonl", "jsonl.gz", "csv", "parquet"}

// writeDataset writes d to path in the format of its suffix (fixturegen
// writes through a temporary file, so an interrupted generation never
// leaves a truncated cache entry behind).
func writeDataset(path string, d dataset) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return fixturegen.WriteFile(path, d.options())
}
