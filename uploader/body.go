package uploader

import (
	"errors"
	"io"
	"sync"

	"github.com/backfillhq/backfill"
)

// Request bodies (about 1 MB for 2,000 events) are the uploader's largest
// allocation, so their buffers are pooled. The HTTP transport may still
// read a request body after Client.Do returns (it closes the body
// asynchronously), so a buffer goes back to the pool only once exchange is
// done with it (after the last retry) and every reader handed to the
// transport was closed. A reader closed, or created after the buffer went
// back, reads nothing: a late read can never see another request's bytes.

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
// transport gets (the first one and any GetBody replay). refs counts
// exchange's own reference and the open readers.
type reqBody struct {
	mu   sync.Mutex
	buf  *[]byte // nil once back in the pool
	n    int     // len(*buf)
	refs int
}

// newReqBody encodes events[idx...] (gzip-compressed when gz) into a pooled
// buffer. The caller holds one reference and must call release.
func newReqBody(enc *encoder, events []backfill.Event, idx []int, gz bool) *reqBody {
	raw := getBuf(enc.size(events, idx))
	*raw = enc.appendBody(*raw, events, idx)
	buf := raw
	if gz {
		buf = getBuf(len(*raw)/4 + 64)
		*buf = appendGzip(*buf, *raw)
		putBuf(raw)
	}
	return &reqBody{buf: buf, n: len(*buf), refs: 1}
}

// Len is the body's length in bytes.
func (b *reqBody) Len() int { return b.n }

// unref drops one reference; b.mu must be held.
func (b *reqBody) unref() {
	b.refs--
	if b.refs == 0 && b.buf != nil {
		putBuf(b.buf)
		b.buf = nil
	}
}

// release drops the caller's reference.
func (b *reqBody) release() {
	b.mu.Lock()
	b.unref()
	b.mu.Unlock()
}

var errBodyGone = errors.New("uploader: request body already released")

// reader returns a new reader of the whole body, for the transport.
func (b *reqBody) reader() (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return nil, errBodyGone
	}
	b.refs++
	return &bodyReader{b: b}, nil
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
