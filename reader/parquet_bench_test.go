package reader_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/backfillhq/backfill/fixtures/fixturegen"
	"github.com/backfillhq/backfill/reader"
)

// benchDataDir holds the datasets of bench/cmd/bench (make bench writes
// them); the decoder benchmarks decode the first benchEvents events of its
// 1M-event files when present (one whole Parquet row group) and fall back
// to fixturegen events otherwise.
const (
	benchDataDir = "../.bench/data"
	benchEvents  = 131072
)

// benchCSVTypes is the --csv-types value bench uses for its CSV files.
var benchCSVTypes = map[string]string{
	"time": "int", "session_id": "int", "event_properties.amount": "float",
	"event_properties.items": "json", "user_properties.seats": "int",
}

// benchFile returns the bench dataset of format ext, or a fixturegen file.
func benchFile(b *testing.B, ext string) (path string, types map[string]string) {
	b.Helper()
	if p := os.Getenv("BACKFILL_BENCH_" + ext); p != "" {
		return p, benchCSVTypes
	}
	p := filepath.Join(benchDataDir, "events-v1-d50000-1000000."+ext)
	if _, err := os.Stat(p); err == nil {
		return p, benchCSVTypes
	}
	p = filepath.Join(b.TempDir(), "events."+ext)
	if err := fixturegen.WriteFile(p, fixturegen.Options{N: benchEvents, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	return p, fixturegen.CSVColumnTypes
}

// benchDecode decodes the whole file once per iteration and reports the
// cost per event.
func benchDecode(b *testing.B, ext string) { benchDecodeOpts(b, ext, reader.Options{}) }

func benchDecodeOpts(b *testing.B, ext string, opts reader.Options) {
	path, types := benchFile(b, ext)
	opts.ColumnTypes, opts.DeferJSONCheck = types, true
	r, err := reader.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	obj := localObject(b, r, path)
	ctx := context.Background()
	var n, bytes int64
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for range b.N {
		d, err := r.Open(ctx, obj, reader.Start{})
		if err != nil {
			b.Fatal(err)
		}
		for k := 0; k < benchEvents; k++ {
			rec, err := d.Next(ctx)
			if err != nil {
				break
			}
			n++
			bytes += int64(len(rec.Data))
		}
		d.Close()
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	if n == 0 {
		b.Fatal("no records")
	}
	b.ReportMetric(float64(cpu)/float64(n), "cpu-ns/event")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
	b.ReportMetric(float64(bytes)/float64(n), "B/event-json")
}

func BenchmarkDecodeParquet(b *testing.B) { benchDecode(b, "parquet") }

// BenchmarkDecodeParquetBatch varies Options.ParquetBatchRows.
func BenchmarkDecodeParquetBatch(b *testing.B) {
	for _, n := range []int{256, 1024, 4096, 16384} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchDecodeOpts(b, "parquet", reader.Options{ParquetBatchRows: n}) })
	}
}

// cpuTime is the process's user and system CPU time in nanoseconds: on a
// shared machine it varies less than the elapsed time.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
