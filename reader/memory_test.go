package reader_test

import (
	"context"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/backfillhq/backfill/fixtures/fixturegen"
	"github.com/backfillhq/backfill/reader"
)

// TestBoundedMemory streams generated inputs many times larger than the
// decoder's buffers and checks that the live heap, sampled after a forced GC
// every 32768 records, stays under a fixed bound: nothing in the decoders
// grows with the object (a Parquet file with a single huge row group
// included). The callers drop each record, as the pipeline does once sent.
func TestBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("large generated inputs; skipped with -short")
	}
	scale := 1
	if raceEnabled {
		scale = 8
	}
	const bound = 32 << 20
	tests := []struct {
		name string
		file string
		n    int
		rg   int
	}{
		{"JSONLines", "big.jsonl", 1_000_000 / scale, 0},       // ~200 MB
		{"JSONLinesZstd", "big.jsonl.zst", 300_000 / scale, 0}, // ~60 MB decompressed
		{"CSV", "big.csv", 600_000 / scale, 0},                 // ~100 MB
		{"Parquet", "big.parquet", 400_000 / scale, 1 << 30},   // one row group
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := dir + "/" + tt.file
			start := time.Now()
			if err := fixturegen.WriteFile(path, fixturegen.Options{N: tt.n, Seed: 5, RowGroupRows: tt.rg}); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(path)
			fi, _ := os.Stat(path)
			gen := time.Since(start)

			r := newReader(t, reader.Options{ColumnTypes: fixturegen.CSVColumnTypes})
			obj := localObject(t, r, path)
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			base := ms.HeapAlloc
			peak := base
			ctx := context.Background()
			d, err := r.Open(ctx, obj, reader.Start{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			n, size := 0, int64(0)
			for {
				rec, err := d.Next(ctx)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				n++
				size += int64(len(rec.Data))
				if n%32768 == 0 {
					runtime.GC()
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapAlloc)
				}
			}
			if n != tt.n {
				t.Fatalf("decoded %d records, want %d", n, tt.n)
			}
			growth := int64(peak) - int64(base)
			t.Logf("%d records, %d MB stored, %d MB of JSON; live heap growth %.1f MB; generate %v, decode %v",
				n, fi.Size()>>20, size>>20, float64(growth)/(1<<20), gen.Round(time.Millisecond), (time.Since(start) - gen).Round(time.Millisecond))
			if growth > bound {
				t.Fatalf("heap grew by %d MB while decoding %d MB; bound %d MB", growth>>20, size>>20, bound>>20)
			}
		})
	}
}
