package uploader

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
)

// wantBody is the body for events[idx...], written out plainly.
func wantBody(enc encoder, events []backfill.Event, idx []int) string {
	raws := make([]string, len(idx))
	for k, i := range idx {
		raws[k] = string(events[i].Raw)
	}
	return string(enc.prefix) + strings.Join(raws, ",") + string(enc.suffix)
}

// readAllGzip returns the decompressed contents of r.
func readAllGzip(t *testing.T, r io.Reader) string {
	t.Helper()
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A gzip body's pooled buffer outlives exchange's reference while the
// transport holds readers, and goes back only after the last one closed.
func TestReqBodyLifetimeGzip(t *testing.T) {
	enc := newEncoder("k", 0)
	evs := []backfill.Event{{Raw: []byte(`{"a":1}`)}, {Raw: []byte(`{"b":2}`)}}
	want := wantBody(enc, evs, []int{0, 1})
	b := newReqBody(&enc, evs, []int{0, 1}, true)
	r1, err := b.reader()
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := b.reader() // a GetBody replay
	b.release()         // exchange is done; the transport still holds readers
	if b.buf == nil {
		t.Fatal("buffer pooled while readers are open")
	}
	if got := readAllGzip(t, r1); got != want {
		t.Fatalf("read %q; want %q", got, want)
	}
	r1.Close()
	r1.Close() // idempotent
	var w bytes.Buffer
	if _, err := r2.(io.WriterTo).WriteTo(&w); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if got := readAllGzip(t, &w); got != want {
		t.Fatalf("WriteTo %q; want %q", got, want)
	}
	if b.buf == nil {
		t.Fatal("buffer pooled before the last reader closed")
	}
	r2.Close()
	if b.buf != nil {
		t.Fatal("buffer not back in the pool after the last reference")
	}
	if n, err := r2.Read(make([]byte, 8)); n != 0 || err == nil {
		t.Fatalf("read after close: %d, %v", n, err)
	}
	if _, err := b.reader(); err == nil {
		t.Fatal("reader of a released body")
	}
}

// A plain body is read in place from the events, in reads of any size, and
// is cut off from them when exchange releases it: a transport reading late
// gets an error, never bytes of events the caller has reused.
func TestReqBodyPlainInPlace(t *testing.T) {
	for _, minID := range []int{0, 7} {
		enc := newEncoder("k", minID)
		evs := []backfill.Event{{Raw: []byte(`{"a":1}`)}, {Raw: []byte(`{"skipped":0}`)}, {Raw: []byte(`{"b":22}`)}, {Raw: []byte(`{"c":333}`)}}
		for _, idx := range [][]int{nil, {0}, {0, 2, 3}, {3, 0}} {
			want := wantBody(enc, evs, idx)
			for _, chunk := range []int{1, 3, 8, 4096} {
				b := newReqBody(&enc, evs, idx, false)
				if b.Len() != len(want) {
					t.Fatalf("Len=%d, want %d", b.Len(), len(want))
				}
				r, err := b.reader()
				if err != nil {
					t.Fatal(err)
				}
				var got []byte
				p := make([]byte, chunk)
				for {
					n, err := r.Read(p)
					got = append(got, p[:n]...)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				if string(got) != want {
					t.Fatalf("idx %v, reads of %d: %q, want %q", idx, chunk, got, want)
				}
				late, _ := b.reader() // a replay the transport has not read yet
				b.release()
				if n, err := late.Read(p); n != 0 || err == nil {
					t.Fatalf("read after release: %d, %v", n, err)
				}
				if _, err := b.reader(); err == nil {
					t.Fatal("reader of a released body")
				}
			}
		}
	}
}

// A Close racing a WriteTo in progress must not pool the buffer under it.
func TestReqBodyWriteToPins(t *testing.T) {
	enc := newEncoder("k", 0)
	evs := []backfill.Event{{Raw: bytes.Repeat([]byte("x"), 1000)}}
	b := newReqBody(&enc, evs, []int{0}, true)
	r, _ := b.reader()
	b.release()
	w := &closingWriter{close: func() { r.Close() }, b: b}
	if _, err := r.(io.WriterTo).WriteTo(w); err != nil {
		t.Fatal(err)
	}
	if w.pooledDuring {
		t.Fatal("buffer pooled during the write")
	}
	if b.buf != nil {
		t.Fatal("buffer not pooled after the write")
	}
}

type closingWriter struct {
	close        func()
	pooledDuring bool
	b            *reqBody
}

func (w *closingWriter) Write(p []byte) (int, error) {
	w.close()
	w.pooledDuring = w.b.buf == nil
	return len(p), nil
}

// Pooled bodies are never shared between requests in flight, including
// when the server answers before reading the body, with gzip, and across
// retries of the same body.
func TestPooledBodiesConcurrent(t *testing.T) {
	for _, gz := range []bool{false, true} {
		t.Run(fmt.Sprint("gzip=", gz), func(t *testing.T) {
			var mu sync.Mutex
			calls := map[string]int{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var rd io.Reader = r.Body
				if gz {
					zr, err := gzip.NewReader(r.Body)
					if err != nil {
						t.Error(err)
						return
					}
					rd = zr
				}
				data, _ := io.ReadAll(rd)
				mu.Lock()
				calls[string(data)]++
				n := calls[string(data)]
				mu.Unlock()
				if n == 1 {
					// Every body fails once, so each is sent twice.
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				w.Write([]byte(`{"code":200}`))
			}))
			defer srv.Close()
			c, err := New(Options{Endpoint: srv.URL, APIKey: "k", HTTPClient: srv.Client(), Gzip: gz, Backoff: func(int) time.Duration { return 0 }})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 25 {
						evs := make([]backfill.Event, 1+i%7)
						for k := range evs {
							evs[k].Raw = fmt.Appendf(nil, `{"g":%d,"i":%d,"k":%d,"pad":%q}`, g, i, k, bytes.Repeat([]byte("p"), 100*k))
						}
						res, err := c.Send(context.Background(), backfill.RouteBatch, evs)
						if err != nil || len(res.Accepted) != len(evs) {
							t.Errorf("Send: %v, accepted %d of %d", err, len(res.Accepted), len(evs))
							return
						}
					}
				}()
			}
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			if len(calls) != 100 {
				t.Fatalf("%d distinct bodies, want 100", len(calls))
			}
			for body, n := range calls {
				if n != 2 {
					t.Fatalf("body sent %d times, want 2 (a corrupted body?): %.80s", n, body)
				}
			}
		})
	}
}
