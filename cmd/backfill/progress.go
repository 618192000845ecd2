package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/backfillhq/backfill/job"
	"github.com/backfillhq/backfill/pipeline"
)

// progress shows a run's progress: a bar on a terminal, a structured log
// line every plainEvery otherwise, or nothing.
type progress struct {
	mode  string        // bar, plain, none
	every time.Duration // interval of plain log lines
	w     io.Writer
	stats *pipeline.Stats
	log   *slog.Logger

	mu      sync.Mutex
	bar     *progressbar.ProgressBar
	objects int
	stop    chan struct{}
	done    chan struct{}
	started time.Time

	ceilings job.Ceilings
	samples  []sample // for the achieved rates: the last rateSpan of renders
}

// rateSpan is the span over which the progress display measures achieved
// rates.
const rateSpan = 10 * time.Second

// sample is the counters at one render.
type sample struct {
	at                 time.Time
	accepted, requests int64
}

// setCeilings receives the run's project ceilings.
func (p *progress) setCeilings(c job.Ceilings) {
	p.mu.Lock()
	p.ceilings = c
	p.mu.Unlock()
}

// rates returns the achieved events/s and requests/s over the last
// rateSpan, the ceiling in force on the current route (0: none) and the
// time held back by project ceilings so far; under mu. Events count when
// Amplitude answers their request (the ceilings see every answer), not
// when their lane's whole chunk is settled.
func (p *progress) rates(route int) (eps, rps, ceil float64, held time.Duration) {
	now := time.Now()
	cur := sample{at: now}
	for i, l := range p.ceilings {
		st := l.Stats()
		held += st.HeldBack
		cur.accepted += st.Taken
		cur.requests += st.Requests
		if i == route {
			ceil = st.EPS
		}
	}
	p.samples = append(p.samples, cur)
	for len(p.samples) > 2 && now.Sub(p.samples[1].at) >= rateSpan {
		p.samples = p.samples[1:]
	}
	first := p.samples[0]
	if len(p.samples) == 1 {
		first = sample{at: p.started}
	}
	if el := now.Sub(first.at).Seconds(); el > 0 {
		eps = float64(cur.accepted-first.accepted) / el
		rps = float64(cur.requests-first.requests) / el
	}
	return eps, rps, ceil, held
}

func newProgress(mode string, quiet bool, w io.Writer, stats *pipeline.Stats, log *slog.Logger) *progress {
	switch {
	case quiet || mode == "none":
		mode = "none"
	case mode == "bar", mode == "plain":
	default:
		mode = "plain"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "bar"
		}
	}
	return &progress{mode: mode, w: w, stats: stats, log: log, started: time.Now()}
}

// start is called once the input size is known.
func (p *progress) start(objects int, bytes int64) {
	if p.mode == "none" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.objects = objects
	p.stop = make(chan struct{})
	p.done = make(chan struct{})
	if p.mode == "bar" {
		p.bar = progressbar.NewOptions64(bytes,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription("reading"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionFullWidth(),
			progressbar.OptionUseANSICodes(true),
		)
	}
	go p.loop()
}

func (p *progress) loop() {
	defer close(p.done)
	every := 200 * time.Millisecond
	if p.mode == "plain" {
		every = p.every
		if every <= 0 {
			every = 10 * time.Second
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.render(false)
		case <-p.stop:
			p.render(true)
			return
		}
	}
}

func (p *progress) status() string {
	s := p.stats
	route := "batch"
	if s.RouteHTTP.Load() {
		route = "httpapi"
	}
	parts := []string{
		fmt.Sprintf("objects %d/%d", s.ObjectsDone.Load(), p.objects),
		fmt.Sprintf("events %d", s.Read.Load()),
		fmt.Sprintf("accepted %d", s.Accepted.Load()),
		fmt.Sprintf("rejected %d", s.Rejected.Load()),
		fmt.Sprintf("retries %d", s.Retries.Load()),
		fmt.Sprintf("429s %d", s.Responses429.Load()),
	}
	if n := s.Parked.Load(); n > 0 {
		parts = append(parts, fmt.Sprintf("parked %d", n))
	}
	parts = append(parts, "route "+route)
	eps, rps, ceil, held := p.rates(routeIndex(s))
	ceilText := "none"
	if ceil > 0 {
		ceilText = fmt.Sprintf("%.0f ev/s", ceil)
	}
	parts = append(parts, fmt.Sprintf("%.0f ev/s, %.1f req/s (ceiling %s, held %s)", eps, rps, ceilText, held.Round(time.Second)))
	return strings.Join(parts, " | ")
}

func (p *progress) render(final bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	switch p.mode {
	case "bar":
		if p.bar == nil {
			return
		}
		p.bar.Describe(p.status())
		read := s.BytesRead()
		if final {
			_ = p.bar.Finish()
			fmt.Fprintln(p.w)
			return
		}
		// Stay below 100% until finish: the reader can consume every byte
		// before the last objects are done, and a bar that reached its
		// maximum is finished and ignores later descriptions.
		_ = p.bar.Set64(min(read, p.bar.GetMax64()-1))
	case "plain":
		el := time.Since(p.started).Seconds()
		rate := 0.0
		if el > 0 {
			rate = float64(s.Accepted.Load()) / el
		}
		eps, rps, ceil, held := p.rates(routeIndex(s))
		p.log.Info("progress",
			"objects_done", s.ObjectsDone.Load(), "objects_total", p.objects,
			"events_read", s.Read.Load(), "events_accepted", s.Accepted.Load(), "events_rejected", s.Rejected.Load(),
			"bytes_read", s.BytesRead(), "retries", s.Retries.Load(), "responses_429", s.Responses429.Load(),
			"parked", s.Parked.Load(), "route", map[bool]string{false: "batch", true: "httpapi"}[s.RouteHTTP.Load()],
			"events_per_second", int64(rate), "achieved_eps", int64(eps), "achieved_rps", rps,
			"ceiling_eps", int64(ceil), "held_back", held.Round(time.Millisecond).String(), "final", final)
	}
}

func routeIndex(s *pipeline.Stats) int {
	if s.RouteHTTP.Load() {
		return 1
	}
	return 0
}

// finish stops the display; ok tells whether the bar should show 100%.
func (p *progress) finish(ok bool) {
	p.mu.Lock()
	stop, done := p.stop, p.done
	if p.bar != nil {
		// Describe first: reaching 100% draws the bar one last time, and
		// a finished bar ignores later descriptions.
		p.bar.Describe(p.status())
		if ok {
			_ = p.bar.Set64(p.bar.GetMax64())
		}
	}
	p.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-done
}

// serveMetrics serves the live counters in Prometheus text format.
func serveMetrics(addr string, s *pipeline.Stats, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		writeMetrics(w, s)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	log.Info("serving metrics", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}

func writeMetrics(w io.Writer, s *pipeline.Stats) {
	m := []struct {
		name, help, kind string
		v                int64
	}{
		{"backfill_objects_listed", "Source objects listed.", "counter", s.ObjectsListed.Load()},
		{"backfill_objects_done", "Source objects fully read.", "counter", s.ObjectsDone.Load()},
		{"backfill_objects_failed", "Source objects that could not be read.", "counter", s.ObjectsFailed.Load()},
		{"backfill_events_read_total", "Records read this run.", "counter", s.Read.Load()},
		{"backfill_events_accepted_total", "Events accepted by Amplitude this run.", "counter", s.Accepted.Load()},
		{"backfill_events_rejected_total", "Records dead-lettered this run.", "counter", s.Rejected.Load()},
		{"backfill_events_parked", "Events parked for ids over the daily quota.", "gauge", s.Parked.Load()},
		{"backfill_requests_batch_total", "Requests to /batch.", "counter", s.RequestsBatch.Load()},
		{"backfill_requests_httpapi_total", "Requests to /2/httpapi.", "counter", s.RequestsHTTPAPI.Load()},
		{"backfill_responses_429_total", "429 responses.", "counter", s.Responses429.Load()},
		{"backfill_responses_5xx_total", "5xx responses and network errors.", "counter", s.Responses5xx.Load()},
		{"backfill_retries_total", "Requests re-sent after a retryable failure.", "counter", s.Retries.Load()},
		{"backfill_bytes_read_total", "Source bytes read.", "counter", s.BytesRead()},
		{"backfill_bytes_sent_total", "Request body bytes sent.", "counter", s.BytesSent.Load()},
	}
	for _, x := range m {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", x.name, x.help, x.name, x.kind, x.name, x.v)
	}
}
