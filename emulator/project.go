package emulator

import (
	"net/http"
	"time"
)

// ProjectWindow is the sliding window of the project-wide limits
// (Config.ProjectEPS and ProjectRPS). Amplitude states them per second
// (amplitude-api.md §5: "≤ 100 batches/s and ≤ 1,000 events/s" on the
// Starter plan) without saying how it measures them; the emulator takes the
// strictest reading: the last second, exactly.
const ProjectWindow = time.Second

// errProjectThrottled is the error text of a project-level 429. Amplitude
// documents no text for it; the body is otherwise the documented 429 with
// every per-id list empty.
const errProjectThrottled = "Too many requests for this project"

// projWindow is one API key's traffic over the last ProjectWindow, exactly:
// one entry per request.
type projWindow struct {
	at           []int64 // unix ns, oldest first
	n            []int64 // events
	head         int
	events, reqs int64
}

// trim drops the entries that left the window ending at now.
func (w *projWindow) trim(now int64) {
	oldest := now - int64(ProjectWindow)
	for w.head < len(w.at) && w.at[w.head] <= oldest {
		w.events -= w.n[w.head]
		w.reqs--
		w.head++
	}
	if w.head > 0 && w.head >= len(w.at)-w.head {
		k := copy(w.at, w.at[w.head:])
		copy(w.n, w.n[w.head:])
		w.at, w.n, w.head = w.at[:k], w.n[:k], 0
	}
}

func (w *projWindow) add(now, n int64) {
	w.at = append(w.at, now)
	w.n = append(w.n, n)
	w.events += n
	w.reqs++
}

// project is the state of the project-wide limits: per API key, what was
// admitted (the limit) and what was received (the measurement behind
// Stats.MaxProjectEPS, whether or not a limit is set).
type project struct {
	admitted, seen map[string]*projWindow
	maxEPS, maxRPS int64
	sweep          int64
}

func newProject() project {
	return project{admitted: map[string]*projWindow{}, seen: map[string]*projWindow{}}
}

func (p *project) window(m map[string]*projWindow, key []byte) *projWindow {
	w := m[string(key)]
	if w == nil {
		w = &projWindow{}
		m[string(key)] = w
	}
	return w
}

// projectLocked counts a request of n events for apiKey at now and decides
// whether the project's limits admit it. Every request that reaches it is
// measured; a request the limits refuse is not counted against them (it
// was not ingested), one they admit is, whatever the per-id checks answer
// next. It is called under s.mu.
func (s *Server) projectLocked(apiKey []byte, n int, now time.Time) (reply, bool) {
	p := &s.proj
	ns := now.UnixNano()
	if ns-p.sweep >= int64(time.Minute) {
		// Forget keys idle for a whole window.
		p.sweep = ns
		for _, m := range []map[string]*projWindow{p.admitted, p.seen} {
			for k, w := range m {
				if w.trim(ns); w.reqs == 0 {
					delete(m, k)
				}
			}
		}
	}
	seen := p.window(p.seen, apiKey)
	seen.trim(ns)
	seen.add(ns, int64(n))
	p.maxEPS, p.maxRPS = max(p.maxEPS, seen.events), max(p.maxRPS, seen.reqs)

	eps, rps := int64(s.l.projectEPS), int64(s.l.projectRPS)
	if eps == 0 && rps == 0 {
		return reply{}, true
	}
	w := p.window(p.admitted, apiKey)
	w.trim(ns)
	if (eps > 0 && w.events+int64(n) > eps) || (rps > 0 && w.reqs+1 > rps) {
		s.stats.ProjectThrottled++
		b := newThrottle(s.l.projectEPS)
		b.Error = errProjectThrottled
		return jsonReply(http.StatusTooManyRequests, b, errProjectThrottled), false
	}
	w.add(ns, int64(n))
	return reply{}, true
}
