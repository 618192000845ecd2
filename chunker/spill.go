package chunker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/backfillhq/backfill"
)

// spill holds the overflow of one device queue on disk, in push order: the
// queue keeps its head in memory and everything pushed after the spill
// started goes to the file, so the device's order is kept. Events are read
// back in slices as the memory part drains.
type spill struct {
	f     *os.File
	wbuf  []byte // encoded events not yet written
	woff  int64  // file size written
	roff  int64  // next read offset
	n     int    // events in the file and wbuf, not yet read back
	bytes int    // their Raw bytes
}

const spillFlush = 256 << 10

func newSpill(dir string) (*spill, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spill: %w", err)
	}
	f, err := os.CreateTemp(dir, "backfill-spill-*.bin")
	if err != nil {
		return nil, fmt.Errorf("spill: %w", err)
	}
	// The file is only ours: unlink it now so nothing is left behind if
	// the process dies; the open descriptor keeps it readable.
	os.Remove(f.Name())
	return &spill{f: f}, nil
}

func (s *spill) push(ev *backfill.Event) error {
	b := s.wbuf
	b = binary.AppendUvarint(b, uint64(len(ev.Raw)))
	b = append(b, ev.Raw...)
	for _, str := range [...]string{ev.DeviceID, ev.UserID, ev.InsertID, ev.EventType, ev.Pos.Object} {
		b = binary.AppendUvarint(b, uint64(len(str)))
		b = append(b, str...)
	}
	for _, v := range [...]int64{ev.Time, ev.Pos.Record, ev.Pos.Offset, ev.Pos.Line, int64(ev.Pos.RowGroup), ev.Pos.Row} {
		b = binary.AppendVarint(b, v)
	}
	s.wbuf = b
	s.n++
	s.bytes += len(ev.Raw)
	if len(s.wbuf) >= spillFlush {
		return s.flush()
	}
	return nil
}

func (s *spill) flush() error {
	if len(s.wbuf) == 0 {
		return nil
	}
	if _, err := s.f.WriteAt(s.wbuf, s.woff); err != nil {
		return fmt.Errorf("spill: write: %w", err)
	}
	s.woff += int64(len(s.wbuf))
	s.wbuf = s.wbuf[:0]
	return nil
}

// read returns up to max events (at least one if any) and at most about
// maxBytes of Raw, in order.
func (s *spill) read(max, maxBytes int) ([]backfill.Event, error) {
	if err := s.flush(); err != nil {
		return nil, err
	}
	var out []backfill.Event
	r := &offReader{f: s.f, off: s.roff, end: s.woff}
	size := 0
	for s.n > 0 && len(out) < max && (len(out) == 0 || size < maxBytes) {
		ev, err := decodeSpilled(r)
		if err != nil {
			return out, fmt.Errorf("spill: read: %w", err)
		}
		s.roff = r.off
		s.n--
		s.bytes -= len(ev.Raw)
		size += len(ev.Raw)
		out = append(out, ev)
	}
	return out, nil
}

// appendTo appends the events of s not read back yet to dst, in order, by
// copying their encoded bytes in fixed-size slices: memory stays constant
// whatever the backlog.
func (s *spill) appendTo(dst *spill) error {
	if s.n == 0 {
		return nil
	}
	if err := s.flush(); err != nil {
		return err
	}
	if err := dst.flush(); err != nil {
		return err
	}
	buf := make([]byte, min(s.woff-s.roff, spillFlush))
	for off := s.roff; off < s.woff; {
		n := int(min(int64(len(buf)), s.woff-off))
		if k, err := s.f.ReadAt(buf[:n], off); k < n {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("spill: read: %w", err)
		}
		if _, err := dst.f.WriteAt(buf[:n], dst.woff); err != nil {
			return fmt.Errorf("spill: write: %w", err)
		}
		off += int64(n)
		dst.woff += int64(n)
	}
	dst.n += s.n
	dst.bytes += s.bytes
	s.roff, s.n, s.bytes = s.woff, 0, 0
	return nil
}

func (s *spill) close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

type offReader struct {
	f        *os.File
	off, end int64
	buf      []byte
	bstart   int64
}

func (r *offReader) ReadByte() (byte, error) {
	if r.off >= r.end {
		return 0, io.ErrUnexpectedEOF
	}
	if r.off < r.bstart || r.off >= r.bstart+int64(len(r.buf)) {
		if err := r.fill(r.off, 64<<10); err != nil {
			return 0, err
		}
	}
	c := r.buf[r.off-r.bstart]
	r.off++
	return c, nil
}

func (r *offReader) fill(at int64, n int) error {
	n = int(min(int64(n), r.end-at))
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if _, err := r.f.ReadAt(r.buf, at); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	r.bstart = at
	return nil
}

func (r *offReader) bytes(n uint64) ([]byte, error) {
	if int64(n) > r.end-r.off {
		return nil, io.ErrUnexpectedEOF
	}
	out := make([]byte, n)
	for got := 0; got < len(out); {
		if r.off < r.bstart || r.off >= r.bstart+int64(len(r.buf)) {
			if err := r.fill(r.off, max(64<<10, len(out)-got)); err != nil {
				return nil, err
			}
		}
		k := copy(out[got:], r.buf[r.off-r.bstart:])
		got += k
		r.off += int64(k)
	}
	return out, nil
}

func decodeSpilled(r *offReader) (backfill.Event, error) {
	var ev backfill.Event
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return ev, err
	}
	if ev.Raw, err = r.bytes(n); err != nil {
		return ev, err
	}
	strs := [...]*string{&ev.DeviceID, &ev.UserID, &ev.InsertID, &ev.EventType, &ev.Pos.Object}
	for _, p := range strs {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return ev, err
		}
		b, err := r.bytes(n)
		if err != nil {
			return ev, err
		}
		*p = string(b)
	}
	var rowGroup int64
	ints := [...]*int64{&ev.Time, &ev.Pos.Record, &ev.Pos.Offset, &ev.Pos.Line, &rowGroup, &ev.Pos.Row}
	for _, p := range ints {
		if *p, err = binary.ReadVarint(r); err != nil {
			return ev, err
		}
	}
	ev.Pos.RowGroup = int(rowGroup)
	return ev, nil
}
