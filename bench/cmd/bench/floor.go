package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fastjson"
)

// floorRead is the bare read-and-parse loop, the reference for the
// product's CPU per event: read the file, decompress it, and parse every
// record with the library the product itself uses for that format, doing
// nothing else. It returns the number of records.
func floorRead(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	switch {
	case strings.HasSuffix(path, ".parquet"):
		return floorParquet(f)
	case strings.HasSuffix(path, ".csv"):
		return floorCSV(f)
	case strings.HasSuffix(path, ".jsonl.gz"):
		zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<16))
		if err != nil {
			return 0, err
		}
		return floorJSONL(zr)
	case strings.HasSuffix(path, ".jsonl"):
		return floorJSONL(f)
	}
	return 0, fmt.Errorf("floor: unknown format of %s", path)
}

// floorJSONL splits lines with bufio and parses each with fastjson.
func floorJSONL(r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var p fastjson.Parser
	var n int64
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 1 {
			if _, perr := p.ParseBytes(line); perr != nil {
				return n, fmt.Errorf("line %d: %w", n+1, perr)
			}
			n++
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// floorCSV reads every row with encoding/csv (reusing the record).
func floorCSV(r io.Reader) (int64, error) {
	cr := csv.NewReader(bufio.NewReaderSize(r, 1<<16))
	cr.ReuseRecord = true
	if _, err := cr.Read(); err != nil { // header
		return 0, err
	}
	var n int64
	for {
		_, err := cr.Read()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// floorParquet decodes every column of every row group into Arrow record
// batches of 1,024 rows (the product's batch length) with pqarrow.
func floorParquet(f *os.File) (int64, error) {
	props := parquet.NewReaderProperties(memory.DefaultAllocator)
	props.BufferedStreamEnabled = true
	props.BufferSize = 1 << 20
	pf, err := file.NewParquetReader(f, file.WithReadProps(props))
	if err != nil {
		return 0, err
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1024}, memory.DefaultAllocator)
	if err != nil {
		return 0, err
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		return 0, err
	}
	defer rr.Release()
	var n int64
	for rr.Next() {
		n += rr.RecordBatch().NumRows()
	}
	if err := rr.Err(); err != nil && err != io.EOF {
		return n, err
	}
	return n, nil
}
