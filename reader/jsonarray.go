package reader

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/backfillhq/backfill"
)

// maxDepth bounds the bracket nesting the array scanner tracks.
const maxDepth = 10000

// Array scanner states.
const (
	arrBegin = iota // before '['
	arrFirst        // after '[': an element or ']'
	arrAfter        // after an element: ',' or ']'
	arrElem         // resuming: an element
	arrEnd          // after ']': only whitespace
	arrDone
)

// jsonArray streams the elements of a top-level JSON array. It finds element
// boundaries by tracking strings and brackets, so one malformed element is a
// record error; broken structure (mismatched brackets, a missing comma, end
// of input inside the array) ends the object.
type jsonArray struct {
	br    *bufio.Reader
	off   int64 // offset of the next unread byte
	line  int64 // line of the next unread byte
	cfg   textConfig
	rec   int64
	state int
	buf   []byte
	stack []byte
}

func newJSONArray(br *bufio.Reader, cfg textConfig, at startState) *jsonArray {
	a := &jsonArray{br: br, off: at.off, line: at.line, cfg: cfg, rec: at.record, state: arrBegin}
	if at.off > 0 {
		a.state = arrElem
	}
	return a
}

func (a *jsonArray) index() int64 { return a.rec }

func (a *jsonArray) readByte() (byte, error) {
	c, err := a.br.ReadByte()
	if err == nil {
		a.off++
		if c == '\n' {
			a.line++
		}
	}
	return c, err
}

// skipSpace consumes whitespace and returns the next byte.
func (a *jsonArray) skipSpace() (byte, error) {
	for {
		c, err := a.readByte()
		if err != nil || !isSpace(rune(c)) {
			return c, err
		}
	}
}

func (a *jsonArray) malformed(format string, args ...any) error {
	return fmt.Errorf("%w: JSON array: line %d (offset %d): %s", ErrMalformed, a.line, a.off, fmt.Sprintf(format, args...))
}

// eofErr turns the end of input inside the array into a located error.
func (a *jsonArray) eofErr(err error, what string) error {
	if err == io.EOF {
		return a.malformed("unexpected end of input %s", what)
	}
	return fmt.Errorf("read line %d (offset %d): %w", a.line, a.off, err)
}

func (a *jsonArray) next() (backfill.Record, error) {
	for {
		switch a.state {
		case arrBegin:
			if p, _ := a.br.Peek(len(bom)); bytes.Equal(p, bom) {
				a.br.Discard(len(bom))
				a.off += int64(len(bom))
			}
			c, err := a.skipSpace()
			if err == io.EOF {
				a.state = arrDone
				return backfill.Record{}, io.EOF // an empty file holds no records
			}
			if err != nil {
				return backfill.Record{}, a.eofErr(err, "")
			}
			if c != '[' {
				return backfill.Record{}, a.malformed("expected '[', found %s", quoteByte(c))
			}
			a.state = arrFirst
		case arrFirst, arrElem:
			c, err := a.skipSpace()
			if err != nil {
				return backfill.Record{}, a.eofErr(err, "before ']'")
			}
			if c == ']' && a.state == arrFirst {
				a.state = arrEnd
				continue
			}
			a.state = arrAfter
			return a.element(c)
		case arrAfter:
			c, err := a.skipSpace()
			if err != nil {
				return backfill.Record{}, a.eofErr(err, "before ']'")
			}
			switch c {
			case ']':
				a.state = arrEnd
			case ',':
				c, err := a.skipSpace()
				if err != nil {
					return backfill.Record{}, a.eofErr(err, "after ','")
				}
				if c == ']' {
					return backfill.Record{}, a.malformed("trailing ',' before ']'")
				}
				return a.element(c)
			default:
				return backfill.Record{}, a.malformed("expected ',' or ']' after an element, found %s", quoteByte(c))
			}
		case arrEnd:
			c, err := a.skipSpace()
			if err == io.EOF {
				a.state = arrDone
				return backfill.Record{}, io.EOF
			}
			if err != nil {
				return backfill.Record{}, a.eofErr(err, "")
			}
			return backfill.Record{}, a.malformed("unexpected %s after the closing ']'", quoteByte(c))
		default:
			return backfill.Record{}, io.EOF
		}
	}
}

// element scans one element whose first byte c was just read.
func (a *jsonArray) element(c byte) (backfill.Record, error) {
	pos := backfill.Position{Object: a.cfg.url, Record: a.rec, Offset: a.off - 1, Line: a.line}
	a.buf = append(a.buf[:0], c)
	long := false
	add := func(c byte) {
		if len(a.buf) < a.cfg.maxRecord {
			a.buf = append(a.buf, c)
		} else {
			long = true
		}
	}
	where := fmt.Sprintf("in the element starting at line %d", pos.Line)
	switch c {
	case '{', '[':
		a.stack = append(a.stack[:0], c)
		inStr, esc := false, false
		for len(a.stack) > 0 {
			c, err := a.readByte()
			if err != nil {
				return backfill.Record{}, a.eofErr(err, where)
			}
			add(c)
			switch {
			case inStr:
				switch {
				case esc:
					esc = false
				case c == '\\':
					esc = true
				case c == '"':
					inStr = false
				}
			case c == '"':
				inStr = true
			case c == '{' || c == '[':
				if len(a.stack) == maxDepth {
					return backfill.Record{}, a.malformed("nesting deeper than %d %s", maxDepth, where)
				}
				a.stack = append(a.stack, c)
			case c == '}' || c == ']':
				open := a.stack[len(a.stack)-1]
				if open == '{' && c != '}' || open == '[' && c != ']' {
					return backfill.Record{}, a.malformed("mismatched %s %s", quoteByte(c), where)
				}
				a.stack = a.stack[:len(a.stack)-1]
			}
		}
	case '"':
		for esc := false; ; {
			c, err := a.readByte()
			if err != nil {
				return backfill.Record{}, a.eofErr(err, where)
			}
			add(c)
			if esc {
				esc = false
			} else if c == '\\' {
				esc = true
			} else if c == '"' {
				break
			}
		}
	default: // a number, literal or garbage: up to the next delimiter
		for {
			p, err := a.br.Peek(1)
			if errors.Is(err, io.EOF) || err == nil && (isSpace(rune(p[0])) || p[0] == ',' || p[0] == ']') {
				break
			}
			if err != nil {
				return backfill.Record{}, a.eofErr(err, where)
			}
			c, _ := a.readByte()
			add(c)
		}
	}
	a.rec++
	if long {
		return backfill.Record{}, &backfill.RecordError{Pos: pos, Raw: bytes.Clone(a.buf[:min(len(a.buf), maxRawLong)]),
			Reason: fmt.Sprintf("array element longer than %d bytes", a.cfg.maxRecord)}
	}
	if reason := checkObject(a.buf); reason != "" {
		return backfill.Record{}, &backfill.RecordError{Pos: pos, Raw: bytes.Clone(a.buf), Reason: "array element " + reason}
	}
	return backfill.Record{Pos: pos, Data: backfill.CloneRecordData(a.buf)}, nil
}
