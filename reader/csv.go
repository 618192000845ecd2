package reader

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/internal/jsonstr"
)

// csvConfig is what the CSV decoder needs from Options.
type csvConfig struct {
	textConfig
	comma rune
	lazy  bool
	types map[string]string
}

func (r *Reader) csvConfig(cfg textConfig, f Format) csvConfig {
	c := csvConfig{textConfig: cfg, comma: r.opts.Delimiter, types: r.opts.ColumnTypes}
	if f == FormatTSV {
		// TSV has no quoting convention of its own: accept stray quotes.
		c.comma, c.lazy = '\t', true
	}
	return c
}

// guardReader fails once the CSV reader has consumed more than limit bytes
// past the end of the last complete row, so an unterminated quoted field
// cannot pull a whole object into memory. It also keeps the bytes read
// since that row end (at most limit plus one read), so that a row the CSV
// parser refuses, such as an unterminated quote that swallowed the rest of
// the object, reaches the dead-letter file whole.
type guardReader struct {
	r     io.Reader
	n     int64 // bytes delivered
	mark  int64 // n at the end of the last row (stream-relative)
	limit int64
	buf   []byte // bytes delivered from base to n
	base  int64
}

// keepSlack is how far the mark may run ahead of the kept bytes before
// they are trimmed, so that trimming costs one small copy per 64 KiB.
const keepSlack = 64 << 10

func (g *guardReader) Read(p []byte) (int, error) {
	if g.n-g.mark > g.limit {
		return 0, fmt.Errorf("%w: a CSV row is longer than %d bytes (unterminated quoted field?)", ErrRecordTooLarge, g.limit)
	}
	if d := g.mark - g.base; d > keepSlack {
		g.buf = g.buf[:copy(g.buf, g.buf[d:])]
		g.base = g.mark
	}
	n, err := g.r.Read(p)
	g.buf = append(g.buf, p[:n]...)
	g.n += int64(n)
	return n, err
}

// since returns the bytes delivered from stream offset from up to to (as
// much of them as is kept).
func (g *guardReader) since(from, to int64) []byte {
	from, to = max(from-g.base, 0), min(to-g.base, int64(len(g.buf)))
	if from >= to {
		return nil
	}
	return bytes.Clone(g.buf[from:to])
}

func newCSVReader(r io.Reader, cfg csvConfig) *csv.Reader {
	cr := csv.NewReader(r)
	cr.Comma = cfg.comma
	cr.LazyQuotes = cfg.lazy
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	return cr
}

func bytesClone(rec []string) []string {
	out := make([]string, len(rec))
	for i, s := range rec {
		out[i] = strings.Clone(s)
	}
	return out
}

// csvDecoder turns the rows of a CSV or TSV object into JSON objects keyed
// by the header.
type csvDecoder struct {
	cfg    csvConfig
	g      *guardReader
	cr     *csv.Reader
	header []string // nil until read
	root   *colNode
	ncol   int
	at     startState
	rec    int64
	delta  int64 // absolute line = reader line + delta
	first  bool  // no row read yet after a resume seek
	done   bool
	out    []byte
}

func newCSV(br *bufio.Reader, cfg csvConfig, header []string, at startState) *csvDecoder {
	g := &guardReader{r: br, limit: int64(cfg.maxRecord)}
	d := &csvDecoder{cfg: cfg, g: g, cr: newCSVReader(g, cfg), header: header, at: at, rec: at.record, first: at.off > 0}
	return d
}

func (d *csvDecoder) index() int64 { return d.rec }

func (d *csvDecoder) next() (backfill.Record, error) {
	if d.done {
		return backfill.Record{}, io.EOF
	}
	if d.root == nil {
		if err := d.init(); err != nil {
			d.done = true
			return backfill.Record{}, err
		}
	}
	start := d.cr.InputOffset()
	off := d.at.off + start
	row, err := d.cr.Read()
	d.g.mark = d.cr.InputOffset()
	if err != nil {
		return backfill.Record{}, d.readError(err, off, start)
	}
	l, _ := d.cr.FieldPos(0)
	pos := backfill.Position{Object: d.cfg.url, Record: d.rec, Offset: off, Line: d.line(int64(l))}
	d.rec++
	if len(row) != d.ncol {
		return backfill.Record{}, &backfill.RecordError{Pos: pos, Raw: csvLine(row, d.cfg.comma),
			Reason: fmt.Sprintf("row has %d fields, header has %d", len(row), d.ncol)}
	}
	for i, cell := range row {
		if !isASCII(cell) && !utf8.ValidString(cell) {
			return backfill.Record{}, &backfill.RecordError{Pos: pos, Raw: csvLine(row, d.cfg.comma),
				Reason: fmt.Sprintf("invalid UTF-8 in column %q", d.header[i])}
		}
	}
	out, _, err := d.root.appendObject(d.out[:0], row)
	d.out = out
	if err != nil {
		return backfill.Record{}, &backfill.RecordError{Pos: pos, Raw: csvLine(row, d.cfg.comma), Reason: backfill.BoundReason(err.Error())}
	}
	return backfill.Record{Pos: pos, Data: backfill.CloneRecordData(out)}, nil
}

// readError handles an error of csv.Reader.Read for the row at off. It is
// apart from next so that pe, whose address escapes, is allocated only on
// errors.
func (d *csvDecoder) readError(err error, off, start int64) error {
	var pe *csv.ParseError
	switch {
	case err == io.EOF:
		d.done = true
		return io.EOF
	case errors.As(err, &pe) && !errors.Is(err, ErrRecordTooLarge):
		line := d.line(int64(pe.StartLine))
		pos := backfill.Position{Object: d.cfg.url, Record: d.rec, Offset: off, Line: line}
		d.rec++
		// The bytes the parser consumed for this row: up to the end of
		// the object for an unterminated quote, which swallowed them.
		raw := d.g.since(start, d.cr.InputOffset())
		return &backfill.RecordError{Pos: pos, Raw: raw, Reason: backfill.BoundReason(fmt.Sprintf("CSV: line %d: %v", d.line(int64(pe.Line)), pe.Err))}
	default:
		d.done = true
		return fmt.Errorf("CSV row %d (offset %d): %w", d.rec, off, err)
	}
}

// line converts a csv.Reader line number to an absolute one. After a resume
// seek the reader counts from 1 at Start.Offset, and the first row read is
// the one at Start.Line.
func (d *csvDecoder) line(l int64) int64 {
	if d.first {
		d.first = false
		d.delta = d.at.line - l
	}
	return l + d.delta
}

func (d *csvDecoder) init() error {
	if d.header == nil {
		rec, err := d.cr.Read()
		d.g.mark = d.cr.InputOffset()
		if err == io.EOF {
			return io.EOF // an empty object holds no records
		}
		if err != nil {
			return fmt.Errorf("%w: CSV header: %v", ErrMalformed, err)
		}
		d.header = bytesClone(rec)
	}
	if len(d.header) > 0 {
		d.header[0] = strings.TrimPrefix(d.header[0], "\ufeff")
	}
	root, err := buildColumns(d.header, d.cfg.types)
	if err != nil {
		return fmt.Errorf("%w: CSV header: %v", ErrMalformed, err)
	}
	d.root, d.ncol = root, len(d.header)
	return nil
}

// csvLine re-encodes a row for RecordError.Raw.
func csvLine(row []string, comma rune) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Comma = comma
	w.Write(row)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}

// colNode is the JSON shape of a header: dotted names such as
// "event_properties.plan" become nested objects.
type colNode struct {
	name   string
	key    []byte // "name": as JSON
	column string // leaf: the header name
	col    int    // leaf: column index; -1 for an object
	typ    string
	kids   []*colNode
}

func buildColumns(header []string, types map[string]string) (*colNode, error) {
	root := &colNode{col: -1}
	for i, name := range header {
		if !utf8.ValidString(name) {
			return nil, fmt.Errorf("column %d: invalid UTF-8 in name", i+1)
		}
		if name == "" {
			return nil, fmt.Errorf("column %d has no name", i+1)
		}
		parts := strings.Split(name, ".")
		for _, p := range parts {
			if p == "" { // "a..b", ".a", "a.": keep the name as one key
				parts = []string{name}
				break
			}
		}
		n := root
		for j, p := range parts {
			var kid *colNode
			for _, k := range n.kids {
				if k.name == p {
					kid = k
				}
			}
			last := j == len(parts)-1
			switch {
			case kid == nil && last:
				n.kids = append(n.kids, &colNode{name: p, key: jsonKey(p), column: name, col: i, typ: types[name]})
			case kid == nil:
				kid = &colNode{name: p, key: jsonKey(p), col: -1}
				n.kids = append(n.kids, kid)
			case last || kid.col >= 0:
				return nil, fmt.Errorf("column %q clashes with another column", name)
			}
			n = kid
		}
	}
	return root, nil
}

// jsonKey returns name as a JSON object key followed by a colon.
func jsonKey(name string) []byte {
	b, _ := jsonstr.Append(nil, name)
	return append(b, ':')
}

// appendObject appends the object for row; wrote is false when every cell
// below n is empty (the object is then omitted by the caller).
func (n *colNode) appendObject(b []byte, row []string) (out []byte, wrote bool, err error) {
	b = append(b, '{')
	for _, k := range n.kids {
		mark := len(b)
		if wrote {
			b = append(b, ',')
		}
		b = append(b, k.key...)
		if k.col < 0 {
			var sub bool
			if b, sub, err = k.appendObject(b, row); err != nil {
				return b, false, err
			}
			if !sub {
				b = b[:mark]
				continue
			}
			wrote = true
			continue
		}
		cell := row[k.col]
		if cell == "" {
			b = b[:mark]
			continue
		}
		if b, err = appendCell(b, cell, k.typ); err != nil {
			return b, false, fmt.Errorf("column %q: %w", k.path(), err)
		}
		wrote = true
	}
	return append(b, '}'), wrote, nil
}

func (n *colNode) path() string { return n.column }

// appendCell appends one cell converted to its declared type.
func appendCell(b []byte, cell, typ string) ([]byte, error) {
	if typ == "" || typ == ColumnString {
		b, _ = appendString(b, cell)
		return b, nil
	}
	if typ == ColumnInt && isCanonicalInt(cell) {
		return append(b, cell...), nil
	}
	t := strings.TrimSpace(cell)
	switch typ {
	case ColumnInt:
		v, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return b, fmt.Errorf("%q is not an int", cell)
		}
		return strconv.AppendInt(b, v, 10), nil
	case ColumnFloat:
		v, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return b, fmt.Errorf("%q is not a float", cell)
		}
		b, ok := appendFloat(b, v, 64)
		if !ok {
			return b, fmt.Errorf("%q is not a finite number", cell)
		}
		return b, nil
	case ColumnBool:
		v, err := strconv.ParseBool(t)
		if err != nil {
			return b, fmt.Errorf("%q is not a bool", cell)
		}
		return strconv.AppendBool(b, v), nil
	case ColumnJSON:
		if err := fastjson.Validate(t); err != nil {
			return b, fmt.Errorf("invalid JSON: %v", err)
		}
		return append(b, t...), nil
	}
	b, _ = appendString(b, cell)
	return b, nil
}

// isASCII reports whether s is all ASCII (and so valid UTF-8), eight bytes
// at a time.
func isASCII(s string) bool {
	var acc uint64
	i := 0
	for ; i+8 <= len(s); i += 8 {
		acc |= uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
	}
	for ; i < len(s); i++ {
		acc |= uint64(s[i])
	}
	return acc&msb == 0
}

// isCanonicalInt reports whether s is an int64 that strconv.AppendInt
// would write back unchanged: digits without a sign or leading zero, at
// most 18 of them so it cannot overflow.
func isCanonicalInt(s string) bool {
	if len(s) == 0 || len(s) > 18 || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i]-'0' > 9 {
			return false
		}
	}
	return true
}
