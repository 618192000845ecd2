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

// spillMin is the least backlog of one device worth moving to disk.
func (l *Lane) spillMin() int { return max(l.opts.MaxEvents/2, 1) }

// makeRoom moves the in-memory backlog of the biggest device queue (beyond
// what one request takes) to its spill file. It reports whether memory was
// freed. Called with l.mu held.
func (l *Lane) makeRoom() bool {
	if l.opts.NoSpill || l.spillErr != nil {
		return false
	}
	// Spill the biggest device queue once it holds two requests' worth (a
	// device that big is a hot one), or else the biggest queue of a device
	// waiting for budget (paced, or paused by a 429), keeping half of it:
	// large events can fill the lane's byte bound long before any queue is
	// that big. A lane full of devices that could go is left to
	// backpressure: the sender is the bottleneck, and the disk must not
	// fill up with the reader's lead.
	var big, waiting *queue
	for _, q := range l.active {
		if big == nil || q.len() > big.len() {
			big = q
		}
		if q.blocked && (waiting == nil || q.len() > waiting.len()) {
			waiting = q
		}
	}
	var keep int
	switch {
	case big != nil && big.len() >= 2*l.spillMin():
		keep = l.spillMin()
	case waiting != nil && waiting.len()-min(l.spillMin(), waiting.len()/2) >= minSpill:
		big, keep = waiting, min(l.spillMin(), waiting.len()/2)
	default:
		return false
	}
	if big.sp == nil {
		sp, err := newSpill(l.opts.SpillDir)
		if err != nil {
			l.spillErr = err
			return false
		}
		big.sp = sp
	}
	// The spill file must hold events in order after the memory part, so
	// the tail goes to a fresh file ahead of what it already holds.
	tail := big.evs[big.head+keep:]
	old := big.sp
	fresh, err := newSpill(l.opts.SpillDir)
	if err != nil {
		l.spillErr = err
		return false
	}
	for i := range tail {
		if err := fresh.push(&tail[i].ev); err != nil {
			l.spillErr = err
			fresh.close()
			return false
		}
	}
	// Copy the old file's unread bytes as they are: decoding them would
	// hold the device's whole backlog in memory.
	if err := old.appendTo(fresh); err != nil {
		l.spillErr = err
		fresh.close()
		return false
	}
	old.close()
	big.sp = fresh
	for i := range tail {
		l.queuedBytes -= len(tail[i].ev.Raw)
		tail[i] = item{}
	}
	l.queued -= len(tail)
	l.spilled += len(tail)
	big.evs = big.evs[:big.head+keep]
	signal(l.space)
	return true
}

// refill reads the next slice of q's spill file into memory. Called with
// l.mu held and q's memory part empty.
func (l *Lane) refill(q *queue) {
	evs, err := q.sp.read(l.opts.MaxEvents, l.opts.MaxBytes)
	if err != nil && l.spillErr == nil {
		l.spillErr = err
	}
	if len(evs) == 0 || q.sp.n == 0 || err != nil {
		l.spilled -= q.sp.n
		q.sp.close()
		q.sp = nil
	}
	l.spilled -= len(evs)
	q.evs, q.head = q.evs[:0], 0
	for i := range evs {
		var uh uint64
		if id := evs[i].UserID; id != "" {
			uh = hashID(id)
		}
		q.evs = append(q.evs, item{evs[i], uh})
		l.queued++
		l.queuedBytes += len(evs[i].Raw)
	}
}
