package emulator

import (
	"bytes"
	"encoding/json"
	"hash/maphash"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/backfillhq/backfill"
	"github.com/klauspost/compress/gzip"
)

// Paths served by the emulator.
const (
	// PathBatch is Amplitude's Batch Event Upload endpoint.
	PathBatch = "/batch"
	// PathHTTP is Amplitude's HTTP V2 endpoint.
	PathHTTP = "/2/httpapi"
	// PathStats answers GET with the Stats as JSON.
	PathStats = "/_emulator/stats"
	// PathEvents answers GET with the accepted events as JSON lines.
	PathEvents = "/_emulator/events"
	// PathReset resets the server on POST (see Reset).
	PathReset = "/_emulator/reset"
)

// Server is the emulator. It implements http.Handler and is safe for
// concurrent use.
type Server struct {
	l       limits
	scratch sync.Pool // *scratch
	ddSeeds [2]maphash.Seed

	mu        sync.Mutex
	rng       *rand.Rand
	ids       map[string]*idState
	dd        *dedupeSet
	events    chunked[Recorded]
	stats     Stats
	forced    []forced
	peakGone  int64 // highest peak among forgotten ids
	proj      project
	lastSweep int64 // window slot of the last idle-id sweep
	recErr    bool  // a Record write failed (logged once)
}

var _ http.Handler = (*Server)(nil)

// New returns a Server for cfg. It fails with ErrInvalidConfig when a
// fault rate is out of range or the rates sum to more than 1.
func New(cfg Config) (*Server, error) {
	l, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	s := &Server{l: l, ddSeeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	s.scratch.New = func() any { return new(scratch) }
	seed := uint64(cfg.Seed)
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s.resetLocked()
	return s, nil
}

func (s *Server) resetLocked() {
	s.ids = make(map[string]*idState)
	s.dd = newDedupeSet()
	s.events = chunked[Recorded]{}
	s.stats = Stats{Responses: map[int]int64{}}
	s.forced = nil
	s.peakGone = 0
	s.lastSweep = 0
	s.proj = newProject()
}

// Reset forgets every event, counter, window, dedupe entry and queued
// fault. The configuration and the random source are kept.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

// ServeHTTP routes Amplitude's and the emulator's own paths.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case PathBatch:
		s.serveIngest(w, r, backfill.RouteBatch)
	case PathHTTP:
		s.serveIngest(w, r, backfill.RouteHTTP)
	case PathStats:
		if !allow(w, r, http.MethodGet) {
			return
		}
		b, _ := json.Marshal(s.Stats())
		writeReply(w, reply{status: http.StatusOK, body: b})
	case PathEvents:
		if !allow(w, r, http.MethodGet) {
			return
		}
		s.serveEvents(w)
	case PathReset:
		if !allow(w, r, http.MethodPost) {
			return
		}
		s.Reset()
		writeReply(w, reply{status: http.StatusOK, body: []byte(`{"code":200}`)})
	default:
		s.mu.Lock()
		s.stats.RequestsOther++
		s.mu.Unlock()
		writeReply(w, errorReply(http.StatusBadRequest, errInvalidPath))
	}
}

func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method || (method == http.MethodGet && r.Method == http.MethodHead) {
		return true
	}
	w.Header().Set("Allow", method)
	writeReply(w, errorReply(http.StatusMethodNotAllowed, "Method not allowed"))
	return false
}

func (s *Server) serveEvents(w http.ResponseWriter) {
	evs := s.Events()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	var buf []byte
	for i, e := range evs {
		buf = appendRecordLine(buf, e.Route, e.Event)
		buf = append(buf, '\n')
		if len(buf) > 64<<10 || i == len(evs)-1 {
			if _, err := w.Write(buf); err != nil {
				return
			}
			buf = buf[:0]
		}
	}
}

// finish counts and writes an answer to an Amplitude path.
func (s *Server) finish(w http.ResponseWriter, route backfill.Route, rep reply, events int) {
	s.mu.Lock()
	s.stats.Responses[rep.status]++
	if events > 0 && rep.status != http.StatusOK && rep.status < 500 {
		s.stats.EventsRejected += int64(events)
	}
	s.mu.Unlock()
	if rep.status != http.StatusOK {
		s.l.logger.Debug("request rejected", "endpoint", route.String(), "status", rep.status, "error", rep.msg)
	}
	writeReply(w, rep)
}

func (s *Server) serveIngest(w http.ResponseWriter, r *http.Request, route backfill.Route) {
	s.mu.Lock()
	if route == backfill.RouteBatch {
		s.stats.RequestsBatch++
	} else {
		s.stats.RequestsHTTP++
	}
	if r.Method != http.MethodPost {
		s.mu.Unlock()
		w.Header().Set("Allow", http.MethodPost)
		s.finish(w, route, errorReply(http.StatusMethodNotAllowed, "Method not allowed"), 0)
		return
	}
	f, delay := s.drawLocked()
	s.mu.Unlock()

	if delay > 0 {
		if err := s.l.sleep(r.Context(), delay); err != nil {
			return // the client went away
		}
	}
	if f.drop {
		s.drop(w)
		return
	}
	if f.status != 0 && !f.after && f.status != http.StatusRequestEntityTooLarge && f.status != http.StatusTooManyRequests {
		s.finish(w, route, faultReply(f.status, 0), 0)
		return
	}

	m := s.scratch.Get().(*scratch)
	m.buf.Reset()
	rep, n := s.handle(r, route, f, m)
	if m.buf.Cap() <= 64<<20 {
		s.scratch.Put(m)
	}
	s.finish(w, route, rep, n)
}

// scratch is the memory one request works in, pooled so that steady
// traffic allocates little.
type scratch struct {
	buf   bytes.Buffer // the decompressed body
	sc    scanner
	aggs  []agg
	table []int32 // open-addressing index of aggs: 1 + index, 0 when free
	key   []byte
	keep  []bool
}

// drop closes the connection without answering.
func (s *Server) drop(w http.ResponseWriter) {
	s.mu.Lock()
	s.stats.Dropped++
	s.mu.Unlock()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // HTTP/2 or a recorder: abort the stream
	}
	_ = conn.Close()
}

// bodyCap is how many decompressed bytes are read at most: enough to tell
// "bad JSON" from "too large" for any plausible body, bounded in memory.
func bodyCap(limit int) int64 {
	if limit <= 0 {
		return 1 << 30
	}
	return 2*int64(limit) + 1<<20
}

// readBody decompresses the request body into buf.
func (s *Server) readBody(r *http.Request, limit int, buf *bytes.Buffer) (reply, bool) {
	var rd io.Reader = r.Body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r.Body)
		if err == io.EOF {
			return errorReply(http.StatusBadRequest, errMissingBody), false
		}
		if err != nil {
			return errorReply(http.StatusBadRequest, errInvalidJSON), false
		}
		defer zr.Close()
		rd = zr
	default:
		return errorReply(http.StatusBadRequest, errContentEncoding), false
	}
	capBytes := bodyCap(limit)
	if _, err := buf.ReadFrom(io.LimitReader(rd, capBytes+1)); err != nil {
		return errorReply(http.StatusBadRequest, errInvalidJSON), false
	}
	if int64(buf.Len()) > capBytes {
		return errorReply(http.StatusRequestEntityTooLarge, errTooLarge), false
	}
	return reply{}, true
}

func contentTypeOK(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return false
	}
	for k := range params {
		if k != "charset" {
			return false
		}
	}
	return true
}
