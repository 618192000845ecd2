package emulator

import (
	"fmt"
	"net/http"
	"time"
)

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
