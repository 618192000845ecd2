package emulator

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

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
}

// Reset forgets every event, counter, window, dedupe entry and queued
// fault. The configuration and the random source are kept.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

// Recorded is one accepted, non-duplicate event.
type Recorded struct {
	// Route is the endpoint that accepted the event.
	Route backfill.Route
	// Event is the event JSON as received (whitespace is compacted only
	// when the event spanned several lines).
	Event json.RawMessage
	// DeviceID, UserID and InsertID are the ids the emulator used, after
	// stripping ids shorter than min_id_length; "" when absent. They are
	// not part of the JSON form.
	DeviceID, UserID, InsertID string
}

// MarshalJSON renders {"endpoint":"batch"|"httpapi","event":{...}}.
func (r Recorded) MarshalJSON() ([]byte, error) {
	return appendRecordLine(nil, r.Route, r.Event), nil
}

// UnmarshalJSON reads the form written by MarshalJSON. Only Route and Event
// are filled.
func (r *Recorded) UnmarshalJSON(b []byte) error {
	var v struct {
		Endpoint string          `json:"endpoint"`
		Event    json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v.Endpoint {
	case "batch":
		r.Route = backfill.RouteBatch
	case "httpapi":
		r.Route = backfill.RouteHTTP
	default:
		return fmt.Errorf("unknown endpoint %q", v.Endpoint)
	}
	r.Event = v.Event
	return nil
}

func appendRecordLine(dst []byte, route backfill.Route, raw []byte) []byte {
	dst = append(dst, `{"endpoint":"`...)
	dst = append(dst, route.String()...)
	dst = append(dst, `","event":`...)
	dst = append(dst, raw...)
	return append(dst, '}')
}

// Stats are the emulator's counters.
type Stats struct {
	// RequestsBatch and RequestsHTTP count requests to /batch and
	// /2/httpapi, whatever their outcome.
	RequestsBatch int64 `json:"requests_batch"`
	RequestsHTTP  int64 `json:"requests_httpapi"`
	// RequestsOther counts requests to unknown paths.
	RequestsOther int64 `json:"requests_other"`
	// EventsAccepted counts ingested events that were not duplicates.
	EventsAccepted int64 `json:"events_accepted"`
	// EventsDuplicate counts ingested events dropped by dedupe.
	EventsDuplicate int64 `json:"events_duplicate"`
	// EventsRejected counts events in requests answered 400, 413 or 429
	// after the events array was read.
	EventsRejected int64 `json:"events_rejected"`
	// Responses counts answers to /batch and /2/httpapi by HTTP status.
	Responses map[int]int64 `json:"responses"`
	// Dropped counts connections closed without an answer.
	Dropped int64 `json:"connections_dropped"`
	// IngestedThenFailed counts requests ingested and answered 5xx.
	IngestedThenFailed int64 `json:"ingested_then_failed"`
	// MaxWindowEPS is MaxWindowEPS at the time of the snapshot.
	MaxWindowEPS float64 `json:"max_window_eps"`
	// TrackedIDs and DedupeEntries show memory use.
	TrackedIDs    int `json:"tracked_ids"`
	DedupeEntries int `json:"dedupe_entries"`
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Responses = make(map[int]int64, len(s.stats.Responses))
	for k, v := range s.stats.Responses {
		st.Responses[k] = v
	}
	st.MaxWindowEPS = float64(s.maxPeakLocked()) / ThrottleWindow.Seconds()
	st.TrackedIDs = len(s.ids)
	st.DedupeEntries = s.dd.len()
	return st
}

// Events returns the accepted, non-duplicate events in arrival order (so
// per-device order is the order the server ingested them). It is empty when
// Config.DiscardEvents is set.
func (s *Server) Events() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events.all()
}

// Peak is the highest throttle-window load seen for one id.
type Peak struct {
	// Kind is "device" or "user".
	Kind string
	ID   string
	// EPS is the window count right after an accepted request, divided by
	// the window length in seconds.
	EPS float64
}

// Peaks lists the peak window rate of every id still tracked (ids idle for
// 24 h are forgotten), highest first.
func (s *Server) Peaks() []Peak {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Peak, 0, len(s.ids))
	for _, st := range s.ids {
		kind := "device"
		if st.kind == 'u' {
			kind = "user"
		}
		out = append(out, Peak{Kind: kind, ID: st.id, EPS: float64(st.peak) / ThrottleWindow.Seconds()})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].EPS != out[j].EPS {
			return out[i].EPS > out[j].EPS
		}
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// MaxWindowEPS is the highest 30 s-average rate any single device_id or
// user_id reached right after an accepted request. A client that respects
// a limit of N events/s keeps it ≤ N.
func (s *Server) MaxWindowEPS() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return float64(s.maxPeakLocked()) / ThrottleWindow.Seconds()
}

func (s *Server) maxPeakLocked() int64 {
	m := s.peakGone
	for _, st := range s.ids {
		m = max(m, st.peak)
	}
	return m
}

// forced is one queued fault.
type forced struct {
	status int
	after  bool // ingest, then answer status
	drop   bool
}

// FailNext makes the next n requests to /batch or /2/httpapi fail with
// status (400–599) without ingesting anything. 413 and 429 are answered
// after validation (a 429 lists every event as throttled); other statuses
// before the body is read. It panics on a status outside 400–599.
func (s *Server) FailNext(n, status int) {
	s.queue(n, status, false)
}

// FailNextAfterIngest makes the next n requests that would get a 200 be
// ingested and then answered with status (400–599), as a 5xx that "may or
// may not have been ingested" does at Amplitude. A request that fails
// validation still gets its real error and consumes the fault. It panics on
// a status outside 400–599.
func (s *Server) FailNextAfterIngest(n, status int) {
	s.queue(n, status, true)
}

// DropNext makes the next n requests to /batch or /2/httpapi end with a
// closed connection and no answer, before anything is ingested. When the
// connection cannot be hijacked (HTTP/2, httptest.ResponseRecorder) the
// handler panics with http.ErrAbortHandler, which net/http turns into an
// aborted response; use it through a real server.
func (s *Server) DropNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.forced = append(s.forced, forced{drop: true})
	}
}

func (s *Server) queue(n, status int, after bool) {
	if status < 400 || status > 599 {
		panic(fmt.Sprintf("emulator: fault status %d not in 400-599", status))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.forced = append(s.forced, forced{status: status, after: after})
	}
}

// drawLocked decides the fault and the latency of one request.
func (s *Server) drawLocked() (forced, time.Duration) {
	var f forced
	if len(s.forced) > 0 {
		f = s.forced[0]
		s.forced = s.forced[1:]
	} else if s.l.hasFaults {
		u := s.rng.Float64()
		pick := -1
		for i, c := range s.l.cumulative {
			if u < c {
				pick = i
				break
			}
		}
		switch pick {
		case 0:
			f.drop = true
		case 1:
			f.status = http.StatusForbidden
		case 2:
			f.status = http.StatusServiceUnavailable
		case 3, 4:
			f.status = s.l.serverErrs[s.rng.IntN(len(s.l.serverErrs))]
			f.after = pick == 4
		case 5:
			f.status = http.StatusRequestEntityTooLarge
		case 6:
			f.status = http.StatusTooManyRequests
		}
	}
	d := s.l.latency
	if s.l.jitter > 0 {
		d += time.Duration(s.rng.Int64N(int64(s.l.jitter)))
	}
	return f, d
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

// agg is one id's share of a request.
type agg struct {
	kind byte   // 'd' device, 'u' user
	id   []byte // points into the request's memory
	n    int64
	st   *idState
	eps  int64 // > 0 when throttled
	day  int64 // > 0 when over the daily quota
}

// idKey appends the key of s.ids for (api key, kind, id) to dst.
func idKey(dst []byte, kind byte, apiKey, id []byte) []byte {
	dst = append(dst, kind)
	dst = append(dst, apiKey...)
	dst = append(dst, 0)
	return append(dst, id...)
}

// handle runs the pipeline after faults that need no body. It returns the
// answer and how many events the request carried (0 if unknown).
func (s *Server) handle(r *http.Request, route backfill.Route, f forced, m *scratch) (reply, int) {
	limit, threshold := s.l.maxBatch, s.l.batchEPS
	if route == backfill.RouteHTTP {
		limit, threshold = s.l.maxHTTP, s.l.httpEPS
	}
	if rep, ok := s.readBody(r, limit, &m.buf); !ok {
		return rep, 0
	}
	if s.l.strict && !contentTypeOK(r.Header.Get("Content-Type")) {
		return errorReply(http.StatusBadRequest, errContentType), 0
	}
	body := m.buf.Bytes()
	if len(bytes.TrimSpace(body)) == 0 {
		return errorReply(http.StatusBadRequest, errMissingBody), 0
	}
	apiKey, events, rep, n, ok := parseBody(&m.sc, body, limit, s.l.apiKeys)
	if !ok {
		return rep, n
	}
	if len(s.l.silenced) > 0 {
		if rep, ok := s.silenced(events, threshold); !ok {
			return rep, len(events)
		}
	}
	s.dedupeKeys(m, apiKey, events)
	aggs := m.aggregate(events)
	return s.admit(route, f, threshold, len(body), apiKey, events, aggs, m), len(events)
}

// dedupeKeys hashes the dedupe key of every event with an insert_id, before
// the lock is taken.
func (s *Server) dedupeKeys(m *scratch, apiKey []byte, events []event) {
	for i := range events {
		ev := &events[i]
		if ev.insertID == nil {
			continue
		}
		b := binary.AppendUvarint(m.key[:0], uint64(len(apiKey)))
		b = append(b, apiKey...)
		b = binary.AppendUvarint(b, uint64(len(ev.device)))
		b = append(b, ev.device...)
		b = append(b, ev.insertID...)
		ev.dkey = dedupeKey{maphash.Bytes(s.ddSeeds[0], b), maphash.Bytes(s.ddSeeds[1], b)}
		m.key = b
	}
}

func (s *Server) silenced(events []event, threshold int) (reply, bool) {
	var devs []string
	var idx []int
	seen := map[string]bool{}
	for i := range events {
		d := events[i].device
		if d == nil {
			continue
		}
		if _, ok := s.l.silenced[string(d)]; !ok {
			continue
		}
		idx = append(idx, i)
		if !seen[string(d)] {
			seen[string(d)] = true
			devs = append(devs, string(d))
		}
	}
	if idx == nil {
		return reply{}, true
	}
	return jsonReply(http.StatusBadRequest, &silencedBody{
		Code:                      http.StatusBadRequest,
		Error:                     errSilenced,
		EPSThreshold:              threshold,
		ExceededDailyQuotaDevices: map[string]int64{},
		SilencedDevices:           devs,
		SilencedEvents:            idx,
		ThrottledDevices:          map[string]int64{},
		ThrottledEvents:           []int{},
	}, errSilenced), false
}

// aggSeed seeds the per-request id index.
var aggSeed = maphash.MakeSeed()

// aggregate groups the request's events by id (device ids and user ids; the
// API key is the same for all), in order of first appearance. It indexes
// them in a small open-addressing table rather than a map so that a
// request allocates nothing per id.
func (m *scratch) aggregate(events []event) []agg {
	size := 64
	for size < 4*len(events) { // at most 2 ids per event: load ≤ 1/2
		size *= 2
	}
	m.table = slices.Grow(m.table[:0], size)[:size]
	clear(m.table)
	clear(m.aggs) // drop references to the previous request
	m.aggs = m.aggs[:0]
	mask := uint64(size - 1)
	for i := range events {
		ev := &events[i]
		for k, id := range [2][]byte{ev.device, ev.user} {
			if id == nil {
				continue
			}
			kind := byte('d')
			if k == 1 {
				kind = 'u'
			}
			j := maphash.Bytes(aggSeed, id) & mask
			for m.table[j] != 0 {
				if a := &m.aggs[m.table[j]-1]; a.kind == kind && bytes.Equal(a.id, id) {
					break
				}
				j = (j + 1) & mask
			}
			if m.table[j] == 0 {
				m.aggs = append(m.aggs, agg{kind: kind, id: id})
				m.table[j] = int32(len(m.aggs))
			}
			m.aggs[m.table[j]-1].n++
			ev.aggs[k] = m.table[j]
		}
	}
	return m.aggs
}

// admit runs throttling, the quota and the ingest under the lock.
func (s *Server) admit(route backfill.Route, f forced, threshold, size int, apiKey []byte, events []event, aggs []agg, m *scratch) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.l.now()
	nowMs := now.UnixMilli()
	winSlot, daySlot := slots(now)
	s.sweepLocked(winSlot, daySlot)

	limit := int64(threshold) * int64(ThrottleWindow/time.Second)
	quota := int64(s.l.dailyQuota)
	throttled := false
	for i := range aggs {
		a := &aggs[i]
		m.key = idKey(m.key[:0], a.kind, apiKey, a.id)
		a.st = s.ids[string(m.key)]
		var cur, day int64
		if a.st != nil {
			cur = a.st.win.count(winSlot, winBuckets)
			day = a.st.day.count(daySlot, dayBuckets)
		}
		forcedThrottle := f.status == http.StatusTooManyRequests && !f.after
		if (limit > 0 && cur+a.n > limit) || forcedThrottle {
			a.eps = max(epsOf(cur+a.n), 1)
			throttled = true
		}
		if quota > 0 && day+a.n > quota {
			a.day = day + a.n
			throttled = true
		}
	}
	if f.status == http.StatusRequestEntityTooLarge && !f.after {
		return faultReply(f.status, threshold)
	}
	if throttled || (f.status == http.StatusTooManyRequests && !f.after) {
		return throttleReply(threshold, events, aggs)
	}

	// Ingest.
	for i := range aggs {
		a := &aggs[i]
		st := a.st
		if st == nil {
			key := string(idKey(m.key[:0], a.kind, apiKey, a.id))
			st = &idState{kind: a.kind, id: key[len(key)-len(a.id):]}
			s.ids[key] = st
		}
		st.win.add(winSlot, a.n)
		st.day.add(daySlot, a.n)
		st.peak = max(st.peak, st.win.sum)
	}
	s.dd.expire(nowMs - DedupeWindow.Milliseconds())
	keep := slices.Grow(m.keep[:0], len(events))[:len(events)]
	clear(keep)
	m.keep = keep
	kept, slab := 0, 0
	for i := range events {
		ev := &events[i]
		if ev.insertID != nil {
			if !s.dd.insert(ev.dkey, nowMs) {
				s.stats.EventsDuplicate++
				continue
			}
		}
		keep[i] = true
		kept++
		slab += len(ev.raw) + len(ev.device) + len(ev.user) + len(ev.insertID)
	}
	s.stats.EventsAccepted += int64(kept)
	if kept > 0 && (!s.l.discard || s.l.record != nil) {
		s.logLocked(route, events, keep, slab)
	}
	if f.after && f.status != 0 {
		s.stats.IngestedThenFailed++
		return faultReply(f.status, threshold)
	}
	return okReply(len(events), size, nowMs)
}

// logLocked appends kept events to the in-memory log and the Record writer.
func (s *Server) logLocked(route backfill.Route, events []event, keep []bool, slab int) {
	var raws []byte
	var idStr string
	if !s.l.discard {
		raws = make([]byte, 0, slab)
		// Ids of the whole request live in one string to save allocations.
		ids := make([]byte, 0, slab)
		for i := range events {
			if keep[i] {
				ids = append(ids, events[i].device...)
				ids = append(ids, events[i].user...)
				ids = append(ids, events[i].insertID...)
			}
		}
		idStr = string(ids)
	}
	var line []byte
	off := 0
	take := func(n int) string { s := idStr[off : off+n]; off += n; return s }
	for i := range events {
		if !keep[i] {
			continue
		}
		ev := &events[i]
		raw := ev.raw
		if bytes.IndexByte(raw, '\n') >= 0 || bytes.IndexByte(raw, '\r') >= 0 {
			var c bytes.Buffer
			if json.Compact(&c, raw) == nil {
				raw = c.Bytes()
			}
		}
		if !s.l.discard {
			start := len(raws)
			raws = append(raws, raw...)
			s.events.push(Recorded{
				Route:    route,
				Event:    raws[start:len(raws):len(raws)],
				DeviceID: take(len(ev.device)),
				UserID:   take(len(ev.user)),
				InsertID: take(len(ev.insertID)),
			})
		}
		if s.l.record != nil {
			line = appendRecordLine(line, route, raw)
			line = append(line, '\n')
		}
	}
	if len(line) > 0 {
		if _, err := s.l.record.Write(line); err != nil && !s.recErr {
			s.recErr = true
			s.l.logger.Warn("record write failed; further errors are not logged", "error", err)
		}
	}
}

func throttleReply(threshold int, events []event, aggs []agg) reply {
	b := newThrottle(threshold)
	for _, a := range aggs {
		if a.eps > 0 {
			if a.kind == 'd' {
				b.ThrottledDevices[string(a.id)] = a.eps
			} else {
				b.ThrottledUsers[string(a.id)] = a.eps
			}
		}
		if a.day > 0 {
			if a.kind == 'd' {
				b.ExceededDailyQuotaDevices[string(a.id)] = a.day
			} else {
				b.ExceededDailyQuotaUsers[string(a.id)] = a.day
			}
		}
	}
	for i := range events {
		for _, k := range events[i].aggs {
			if k != 0 && (aggs[k-1].eps > 0 || aggs[k-1].day > 0) {
				b.ThrottledEvents = append(b.ThrottledEvents, i)
				break
			}
		}
	}
	return jsonReply(http.StatusTooManyRequests, b, errThrottled)
}

// sweepLocked forgets ids with nothing left in either window, once per
// minute of the (injected) clock, so memory follows recent activity only.
func (s *Server) sweepLocked(winSlot, daySlot int64) {
	const every = int64(time.Minute / winBucket)
	if winSlot-s.lastSweep < every && winSlot >= s.lastSweep {
		return
	}
	s.lastSweep = winSlot
	for k, st := range s.ids {
		if st.win.count(winSlot, winBuckets) == 0 && st.day.count(daySlot, dayBuckets) == 0 {
			s.peakGone = max(s.peakGone, st.peak)
			delete(s.ids, k)
		}
	}
}
