package reader

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/backfillhq/backfill"
)

// maxRawLong bounds RecordError.Raw for records over the size limit.
const maxRawLong = 1024

// lineReader reads lines of any length up to a limit from a bufio.Reader,
// tracking byte offsets and line numbers.
type lineReader struct {
	br   *bufio.Reader
	off  int64 // offset of the next unread byte
	line int64 // number of the next line
	max  int
	buf  []byte
}

// read returns the next line without its "\n" (and "\r"), with the offset
// and number of its start. A line longer than max is cut to max bytes and
// long is set. The returned slice is valid until the next call.
func (lr *lineReader) read() (b []byte, off, line int64, long bool, err error) {
	off, line = lr.off, lr.line
	lr.buf = lr.buf[:0]
	for {
		chunk, err := lr.br.ReadSlice('\n')
		lr.off += int64(len(chunk))
		switch {
		case err == nil && len(lr.buf) == 0 && !long:
			lr.line++
			b, long = lr.cut(chunk)
			return b, off, line, long, nil
		case len(lr.buf)+len(chunk) <= lr.max+2: // room for "\r\n"
			lr.buf = append(lr.buf, chunk...)
		default:
			long = true
			lr.buf = append(lr.buf, chunk[:max(0, min(len(chunk), lr.max+2-len(lr.buf)))]...)
		}
		switch err {
		case nil:
			lr.line++
			b, l := lr.cut(lr.buf)
			return b, off, line, long || l, nil
		case bufio.ErrBufferFull:
			continue
		case io.EOF:
			if lr.off == off {
				return nil, off, line, false, io.EOF
			}
			lr.line++
			b, l := lr.cut(lr.buf)
			return b, off, line, long || l, nil
		default:
			return nil, off, line, false, fmt.Errorf("read line %d (offset %d): %w", line, off, err)
		}
	}
}

// cut strips the line terminator and cuts b to max bytes.
func (lr *lineReader) cut(b []byte) ([]byte, bool) {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	b = bytes.TrimSuffix(b, []byte{'\r'})
	if len(b) > lr.max {
		return b[:lr.max], true
	}
	return b, false
}

// jsonLines decodes one JSON object per line.
type jsonLines struct {
	lr  lineReader
	cfg textConfig
	rec int64
}

func newJSONLines(br *bufio.Reader, cfg textConfig, at startState) *jsonLines {
	return &jsonLines{
		lr:  lineReader{br: br, off: at.off, line: at.line, max: cfg.maxRecord},
		cfg: cfg,
		rec: at.record,
	}
}

func (j *jsonLines) index() int64 { return j.rec }

func (j *jsonLines) next() (backfill.Record, error) {
	for {
		b, off, line, long, err := j.lr.read()
		if err != nil {
			return backfill.Record{}, err
		}
		if off == 0 {
			b = bytes.TrimPrefix(b, bom)
		}
		t := bytes.Trim(b, " \t\r\n")
		if len(t) == 0 && !long {
			continue // blank lines are not records but count as lines
		}
		pos := backfill.Position{Object: j.cfg.url, Record: j.rec, Offset: off, Line: line}
		j.rec++
		if long {
			return backfill.Record{}, &backfill.RecordError{Pos: pos, Raw: bytes.Clone(t[:min(len(t), maxRawLong)]),
				Reason: fmt.Sprintf("line longer than %d bytes", j.cfg.maxRecord)}
		}
		reason := ""
		if j.cfg.deferJSON {
			reason = checkStart(t)
		} else {
			reason = checkObject(t)
		}
		if reason != "" {
			return backfill.Record{}, &backfill.RecordError{Pos: pos, Raw: bytes.Clone(t), Reason: reason}
		}
		return backfill.Record{Pos: pos, Data: backfill.CloneRecordData(t), Unchecked: j.cfg.deferJSON}, nil
	}
}

// checkStart returns why t cannot be a JSON object in valid UTF-8 at first
// sight, or "".
func checkStart(t []byte) string {
	if !utf8.Valid(t) {
		return "invalid UTF-8"
	}
	if t[0] != '{' {
		return "not a JSON object (starts with " + quoteByte(t[0]) + ")"
	}
	return ""
}

// checkObject returns why t is not one valid JSON object in valid UTF-8, or
// "" when it is.
func checkObject(t []byte) string {
	if reason := checkStart(t); reason != "" {
		return reason
	}
	if err := fastjson.ValidateBytes(t); err != nil {
		return backfill.BoundReason("invalid JSON: " + err.Error())
	}
	return ""
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return "'" + string(c) + "'"
	}
	return fmt.Sprintf("byte 0x%02x", c)
}
