package reader

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/internal/jsonstr"
)

// Range-read tuning for Parquet over object storage. A read fetches exactly
// the bytes asked for, at least minRangeRead (tiny footer and header reads
// share a request); a server keeps sending a range even when the client
// stops reading, so larger read-ahead would waste transfer. Reads that
// continue where an open range stopped reuse it; at most maxStreams stay
// open.
const (
	minRangeRead = 64 << 10
	maxStreams   = 8
)

// openParquet opens a Parquet object: footer, projection, and a record
// reader positioned at start.Record (whole row groups are skipped, then rows
// inside the first one).
func (r *Reader) openParquet(ctx context.Context, d *Decoder, obj Object, st store, start Start) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: parquet: %v", ErrMalformed, p)
		}
	}()
	var src parquet.ReaderAtSeeker
	switch s := st.(type) {
	case localStore:
		f, err := os.Open(string(s))
		if err != nil {
			return err
		}
		d.closers = append(d.closers, f)
		cf := &countingFile{f: f}
		d.read = func() int64 { return cf.n.Load() }
		src = cf
	case *bucketStore:
		size := obj.Size
		if size <= 0 {
			attrs, err := s.b.Attributes(ctx, s.key)
			if err != nil {
				return err
			}
			size = attrs.Size
		}
		ra := &blobReaderAt{ctx: ctx, b: s.b, key: s.key, size: size}
		d.closers = append(d.closers, ra)
		d.read = func() int64 { return ra.n.Load() }
		src = noClose{ra}
	}
	props := parquet.NewReaderProperties(memory.DefaultAllocator)
	props.BufferedStreamEnabled = true
	props.BufferSize = int64(r.opts.ParquetBufferSize)
	pf, err := file.NewParquetReader(src, file.WithReadProps(props))
	if err != nil {
		return fmt.Errorf("%w: parquet: %v", ErrMalformed, err)
	}
	d.closers = append(d.closers, pf)
	pd := &parquetDecoder{url: obj.URL, rec: start.Record}
	var total int64
	first := -1
	for i := range pf.NumRowGroups() {
		n := pf.MetaData().RowGroup(i).NumRows()
		if first < 0 && start.Record < total+n {
			first = i
			pd.rg, pd.rgStart = i, total
		}
		total += n
		pd.rgEnds = append(pd.rgEnds, total)
	}
	arrowProps := pqarrow.ArrowReadProperties{BatchSize: int64(r.opts.ParquetBatchRows)}
	if first >= 0 {
		for _, c := range smallDictColumns(pf, first) {
			arrowProps.SetReadDict(c, true)
		}
	}
	fr, err := pqarrow.NewFileReader(pf, arrowProps, memory.DefaultAllocator)
	if err != nil {
		return fmt.Errorf("%w: parquet: %v", ErrMalformed, err)
	}
	var cols []int
	if len(r.opts.Columns) > 0 {
		if cols, err = leafColumns(pf, r.opts.Columns); err != nil {
			return err
		}
	}
	d.dec = pd
	if first < 0 { // empty file, or start past the end
		pd.done = true
		return nil
	}
	groups := make([]int, 0, pf.NumRowGroups()-first)
	for i := first; i < pf.NumRowGroups(); i++ {
		groups = append(groups, i)
	}
	rr, err := fr.GetRecordReader(ctx, cols, groups)
	if err != nil {
		return fmt.Errorf("%w: parquet: %v", ErrMalformed, err)
	}
	d.closers = append(d.closers, releaser{rr})
	// Rows before start.Record inside the first row group are decoded and
	// dropped batch by batch: RecordReader.SeekToRow mis-reads nested
	// (list/map) columns in arrow-go v18.8.0.
	pd.rec, pd.skipTo = pd.rgStart, start.Record
	pd.rr = rr
	return nil
}

// maxReadDictPage bounds the (compressed) dictionary page of the string
// columns read as Arrow dictionaries: pqarrow copies the whole dictionary
// into every record batch, which is cheaper than copying each value only
// while the dictionary is small.
var maxReadDictPage int64 = 4 << 10

// smallDictColumns returns the string (byte array) leaf columns outside
// lists and maps that are dictionary-encoded in every data page of the row
// groups from first on, with a small dictionary. Reading them as Arrow
// dictionaries decodes indices only, where a plain read copies every value
// into a new array; the JSON is the same (dictWriter). Columns without page
// encoding statistics are read plainly: pqarrow would hash the values of a
// plain-encoded page into the dictionary one by one.
func smallDictColumns(pf *file.Reader, first int) []int {
	md := pf.MetaData()
	var cols []int
	for c := range md.Schema.NumColumns() {
		if col := md.Schema.Column(c); col.PhysicalType() != parquet.Types.ByteArray || col.MaxRepetitionLevel() > 0 {
			continue
		}
		ok := true
		for g := first; g < pf.NumRowGroups() && ok; g++ {
			cc, err := md.RowGroup(g).ColumnChunk(c)
			if err != nil || !cc.HasDictionaryPage() || cc.DataPageOffset()-cc.DictionaryPageOffset() > maxReadDictPage {
				ok = false
				break
			}
			stats := cc.EncodingStats()
			ok = len(stats) > 0
			for _, st := range stats {
				if st.PageType.String() != "DICTIONARY_PAGE" && st.Encoding != parquet.Encodings.RLEDict && st.Encoding != parquet.Encodings.PlainDict {
					ok = false
				}
			}
		}
		if ok {
			cols = append(cols, c)
		}
	}
	return cols
}

type releaser struct{ rr pqarrow.RecordReader }

func (r releaser) Close() error { r.rr.Release(); return nil }

// leafColumns maps top-level column names to Parquet leaf column indices.
func leafColumns(pf *file.Reader, names []string) ([]int, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = false
	}
	sc := pf.MetaData().Schema
	var cols []int
	for i := range sc.NumColumns() {
		top := sc.Column(i).ColumnPath()[0]
		if _, ok := want[top]; ok {
			want[top] = true
			cols = append(cols, i)
		}
	}
	for _, n := range names {
		if !want[n] {
			return nil, fmt.Errorf("parquet: column %q is not in the schema", n)
		}
	}
	return cols, nil
}

// parquetDecoder converts record batches into JSON objects, one per row.
type parquetDecoder struct {
	url     string
	rr      pqarrow.RecordReader
	batch   arrow.RecordBatch
	cols    []pqField // writers of batch's columns
	row     int
	rgEnds  []int64 // cumulative row count at the end of each row group
	rg      int
	rgStart int64
	rec     int64 // global index of the next row
	skipTo  int64 // rows below this index are dropped unconverted
	done    bool
	out     []byte
}

func (p *parquetDecoder) index() int64 { return p.rec }

func (p *parquetDecoder) next() (rec backfill.Record, err error) {
	defer func() {
		if v := recover(); v != nil {
			p.done = true
			rec, err = backfill.Record{}, fmt.Errorf("%w: parquet row %d: %v", ErrMalformed, p.rec, v)
		}
	}()
	if p.done {
		return backfill.Record{}, io.EOF
	}
	for p.batch == nil || p.row >= int(p.batch.NumRows()) {
		if !p.rr.Next() {
			p.done = true
			if err := p.rr.Err(); err != nil && err != io.EOF {
				return backfill.Record{}, fmt.Errorf("%w: parquet row %d: %v", ErrMalformed, p.rec, err)
			}
			return backfill.Record{}, io.EOF
		}
		p.setBatch(p.rr.RecordBatch())
		if skip := min(p.skipTo-p.rec, p.batch.NumRows()); skip > 0 {
			p.row += int(skip)
			p.rec += skip
		}
	}
	i := p.row
	p.row++
	for p.rg < len(p.rgEnds)-1 && p.rec >= p.rgEnds[p.rg] {
		p.rgStart = p.rgEnds[p.rg]
		p.rg++
	}
	pos := backfill.Position{Object: p.url, Record: p.rec, Offset: -1, RowGroup: p.rg, Row: p.rec - p.rgStart}
	p.rec++
	b := append(p.out[:0], '{')
	n := 0
	for c := range p.cols {
		col := &p.cols[c]
		if col.null(i) {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, col.key...)
		if b, err = col.write(b, i); err != nil {
			p.out = b
			return backfill.Record{}, &backfill.RecordError{Pos: pos, Reason: backfill.BoundReason(fmt.Sprintf("column %q: %v", col.name, err))}
		}
	}
	b = append(b, '}')
	p.out = b
	return backfill.Record{Pos: pos, Data: backfill.CloneRecordData(b)}, nil
}

// setBatch makes batch the current one and builds its column writers.
func (p *parquetDecoder) setBatch(batch arrow.RecordBatch) {
	p.batch, p.row = batch, 0
	sc := batch.Schema()
	p.cols = p.cols[:0]
	for c, col := range batch.Columns() {
		p.cols = append(p.cols, newPQField(sc.Field(c).Name, col))
	}
}

var errInvalidUTF8 = errors.New("invalid UTF-8 in a string")

func appendFloatOrNull(b []byte, f float64, bits int) []byte {
	if out, ok := appendFloat(b, f, bits); ok {
		return out
	}
	return append(b, "null"...)
}

func appendBinary(b, v []byte) []byte {
	if utf8.Valid(v) {
		b, _ = jsonstr.Append(b, v)
		return b
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// toMillis converts v in unit to milliseconds, rounding toward minus infinity.
func toMillis(v int64, unit arrow.TimeUnit) int64 {
	switch unit {
	case arrow.Second:
		return v * 1000
	case arrow.Microsecond:
		return floorDiv(v, 1000)
	case arrow.Nanosecond:
		return floorDiv(v, 1_000_000)
	}
	return v
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
