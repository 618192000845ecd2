package uploader

import (
	"errors"
	"io"
	"sync"

	"github.com/backfillhq/backfill"
)

// A request body (about 1 MB for 2,000 events) is not built: a plain body
// is read in place from the encoder's prefix, the events' Raw bytes and its
// suffix, so a request costs no copy of its events and no megabyte of
// garbage (it was the largest allocation of a run). The events belong to
// the caller again once Send returns, while the HTTP transport may still
// read a body after Client.Do returns (when a server answers before reading
// all of it); so exchange's release cuts a plain body off: a reader then
// reads nothing, and a late read can never see bytes the caller reused.
//
// A gzip body is compressed into a pooled buffer, which goes back to the
// pool only once exchange is done with it (after the last retry) and every
// reader handed to the transport was closed. A reader closed, or created
// after the buffer went back, reads nothing.

// bodyBufs holds a few free buffers. Not a sync.Pool: buffers put there
// stay until two collections pass, and with one request in flight per lane
// a burst of finished requests left up to 26 MB of bodies in it; a small
// free list keeps what is held beyond the requests in flight bounded.
var bodyBufs = make(chan *[]byte, maxFreeBodies)

// maxFreeBodies bounds the free buffers kept for the next requests.
const maxFreeBodies = 4

// maxPooledBody keeps unusually large bodies (events near the 20 MB limit)
// out of the pool.
const maxPooledBody = 4 << 20

// getBuf returns an empty buffer of capacity at least n.
func getBuf(n int) *[]byte {
	select {
	case p := <-bodyBufs:
		if cap(*p) >= n {
			*p = (*p)[:0]
			return p
		}
		// Too small for this request: leave it to the GC, as the larger
		// one allocated below will serve the next requests too.
	default:
	}
	// Headroom and rounding make buffers interchangeable between requests
	// of slightly different sizes.
	c := (n + n/8 + bodyRound - 1) / bodyRound * bodyRound
	b := make([]byte, 0, c)
	return &b
}

const bodyRound = 64 << 10

func putBuf(p *[]byte) {
	if cap(*p) <= maxPooledBody {
		select {
		case bodyBufs <- p:
		default:
		}
	}
}

// reqBody is one request body, shared by exchange and the readers the
// transport gets (the first one and any GetBody replay).
type reqBody struct {
	mu sync.Mutex
	n  int // length in bytes
	// A plain body: its parts, nil once exchange released it.
	src *bodyParts
	// A gzip body: its pooled buffer, nil once back in the pool; refs
	// counts exchange's own reference and the open readers.
	buf  *[]byte
	refs int
}

// bodyParts are the pieces a plain body is read from:
// prefix, events[idx[0]].Raw, ",", events[idx[1]].Raw, ..., suffix.
type bodyParts struct {
	enc    *encoder
	events []backfill.Event
	idx    []int
}

// count is the number of pieces.
func (p *bodyParts) count() int { return 2 + max(0, 2*len(p.idx)-1) }

// piece returns piece k.
func (p *bodyParts) piece(k int) []byte {
	switch j := k - 1; {
	case k == 0:
		return p.enc.prefix
	case k == p.count()-1:
		return p.enc.suffix
	case j%2 == 1:
		return comma
	default:
		return p.events[p.idx[j/2]].Raw
	}
}

var comma = []byte{','}

// newReqBody makes the body for events[idx...], gzip-compressed into a
// pooled buffer when gz. events must not change until release. The caller
// holds one reference and must call release.
func newReqBody(enc *encoder, events []backfill.Event, idx []int, gz bool) *reqBody {
	parts := &bodyParts{enc: enc, events: events, idx: idx}
	n := enc.size(events, idx)
	if !gz {
		return &reqBody{src: parts, n: n}
	}
	buf := getBuf(n/4 + 64)
	*buf = appendGzipParts(*buf, parts)
	return &reqBody{buf: buf, n: len(*buf), refs: 1}
}

// Len is the body's length in bytes.
func (b *reqBody) Len() int { return b.n }

// unref drops one reference to a gzip body's buffer; b.mu must be held.
func (b *reqBody) unref() {
	b.refs--
	if b.refs == 0 && b.buf != nil {
		putBuf(b.buf)
		b.buf = nil
	}
}

// release drops the caller's reference: a plain body is cut off from its
// events, a gzip body's buffer goes back once its readers are closed.
func (b *reqBody) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.src != nil {
		b.src = nil
		return
	}
	b.unref()
}

var errBodyGone = errors.New("uploader: request body already released")

// reader returns a new reader of the whole body, for the transport.
func (b *reqBody) reader() (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.src != nil:
		return &partsReader{b: b}, nil
	case b.buf != nil:
		b.refs++
		return &bodyReader{b: b}, nil
	}
	return nil, errBodyGone
}

// partsReader reads a plain body from its parts. Each Read copies under the
// body's lock, so release waits for a copy in progress and none starts
// after it.
type partsReader struct {
	b      *reqBody
	k, off int // the next byte is piece k's off-th
	closed bool
}

func (r *partsReader) Read(p []byte) (int, error) {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	src := r.b.src
	if r.closed || src == nil {
		return 0, errBodyGone
	}
	n := 0
	for count := src.count(); n < len(p) && r.k < count; {
		c := copy(p[n:], src.piece(r.k)[r.off:])
		n += c
		r.off += c
		if r.off == len(src.piece(r.k)) {
			r.k, r.off = r.k+1, 0
		}
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (r *partsReader) Close() error {
	r.b.mu.Lock()
	r.closed = true
	r.b.mu.Unlock()
	return nil
}

type bodyReader struct {
	b      *reqBody
	off    int
	closed bool
}

func (r *bodyReader) Read(p []byte) (int, error) {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	if r.closed {
		return 0, errBodyGone
	}
	if r.off >= r.b.n {
		return 0, io.EOF
	}
	n := copy(p, (*r.b.buf)[r.off:r.b.n])
	r.off += n
	return n, nil
}

func (r *bodyReader) Close() error {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.b.unref()
	}
	return nil
}

// WriteTo writes the rest of the body in one Write, as bytes.Reader does
// (io.Copy into the connection then needs no 32 KB copy buffer). The body
// is pinned during the write, so a concurrent Close cannot return the
// buffer to the pool under it.
func (r *bodyReader) WriteTo(w io.Writer) (int64, error) {
	r.b.mu.Lock()
	if r.closed {
		r.b.mu.Unlock()
		return 0, errBodyGone
	}
	data := (*r.b.buf)[min(r.off, r.b.n):r.b.n]
	r.b.refs++
	r.b.mu.Unlock()
	var n int
	var err error
	if len(data) > 0 {
		n, err = w.Write(data)
	}
	r.b.mu.Lock()
	r.off += n
	r.b.unref()
	r.b.mu.Unlock()
	return int64(n), err
}
