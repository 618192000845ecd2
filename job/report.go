package job

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/deadletter"
	"github.com/backfillhq/backfill/pipeline"

	"github.com/backfillhq/backfill/internal/escape"
	"github.com/backfillhq/backfill/internal/redact"
)

// ReportSchemaVersion is the version of the JSON report's schema. Fields are
// only ever added within a version.
const ReportSchemaVersion = 1

// Status values of a report: the run's backfill.Outcome.
const (
	StatusComplete    = backfill.Complete
	StatusRejected    = backfill.Rejected
	StatusFailed      = backfill.Failed
	StatusInterrupted = backfill.Interrupted
	StatusIncomplete  = backfill.Incomplete
)

// Report is the outcome of a job, cumulative over all its runs (resumes).
// Its JSON field names are stable and documented in the README.
type Report struct {
	SchemaVersion int              `json:"schema_version"`
	Status        backfill.Outcome `json:"status"`
	Error         string           `json:"error,omitempty"`

	EventsRead     int64 `json:"events_read"`
	EventsAccepted int64 `json:"events_accepted"`
	EventsRejected int64 `json:"events_rejected"`
	// EventsSkipped are records the source excluded from Amplitude
	// (Segment's integrations object): settled, neither sent nor
	// dead-lettered. A finished job has read = accepted + rejected + skipped.
	EventsSkipped int64 `json:"events_skipped"`
	EventsPending int64 `json:"events_pending"` // read but not settled: parked or in flight at an interruption
	// DuplicateInsertIDs counts events that share their device (or user)
	// and insert_id with an earlier, different event: Amplitude keeps only
	// the first of them (see the log for the first examples).
	DuplicateInsertIDs int64 `json:"duplicate_insert_ids"`
	RequestsBatch      int64 `json:"requests_batch"`
	RequestsHTTPAPI    int64 `json:"requests_httpapi"`
	Responses429       int64 `json:"responses_429"`
	Responses5xx       int64 `json:"responses_5xx"`
	Retries            int64 `json:"retries"`
	BytesSent          int64 `json:"bytes_sent"`
	// EventsResent counts records sent again after crashes because their
	// acknowledgement was not durable yet (in flight at a kill).
	EventsResent int64 `json:"events_resent"`

	DurationSeconds float64 `json:"duration_seconds"` // this run
	// LowerBoundSeconds is the least time Amplitude's per-id limits allow
	// for this run's /batch events: the hottest id's events at --eps over
	// 30 s windows (see `backfill plan`).
	LowerBoundSeconds float64 `json:"lower_bound_seconds"`
	HottestID         string  `json:"hottest_id,omitempty"`
	HottestEvents     int64   `json:"hottest_events,omitempty"`
	// AchievedEPS and AchievedRPS are this run's accepted events and its
	// requests per second of its duration.
	AchievedEPS float64 `json:"achieved_eps"`
	AchievedRPS float64 `json:"achieved_rps"`
	// HeldBackSeconds is how long this run's project ceilings held requests
	// back (see Ceilings).
	HeldBackSeconds float64 `json:"held_back_seconds"`
	// Ceilings are this run's project-wide ceilings, by route.
	Ceilings   map[string]CeilingReport `json:"ceilings,omitempty"`
	JobSeconds float64                  `json:"job_seconds"` // since the job's first run
	Runs       int                      `json:"runs"`
	StartedAt  time.Time                `json:"started_at"`
	FinishedAt time.Time                `json:"finished_at"`

	ObjectsTotal   int `json:"objects_total"`
	ObjectsDone    int `json:"objects_done"`
	ObjectsFailed  int `json:"objects_failed"`
	ObjectsSkipped int `json:"objects_skipped"` // complete in an earlier run

	Objects          []ObjectReport         `json:"objects"`
	Routes           map[string]RouteReport `json:"routes"`
	RejectionReasons []ReasonCount          `json:"rejection_reasons"`

	// This run only (a resumed job's totals above include earlier runs).
	Run RunReport `json:"run"`
	// Shard is a sharded run's reading cost (this run); nil when unsharded.
	Shard *ShardReport `json:"shard,omitempty"`
	// Plan is the generation of the job's route plan the run followed.
	Plan int `json:"plan,omitempty"`

	DeadLetterFile string `json:"dead_letter_file"`
	Checkpoint     string `json:"checkpoint"`
	ReportFile     string `json:"report_file,omitempty"`
	Endpoint       string `json:"endpoint"`

	err error
}

// ObjectReport is one source object's line of the report.
type ObjectReport struct {
	URL      string  `json:"url"`
	Route    string  `json:"route"`
	Status   string  `json:"status"` // done, skipped, failed, partial
	Read     int64   `json:"read"`
	Accepted int64   `json:"accepted"`
	Rejected int64   `json:"rejected"`
	Skipped  int64   `json:"skipped,omitempty"`
	Seconds  float64 `json:"seconds,omitempty"`
	Error    string  `json:"error,omitempty"`
}

// RouteReport sums the objects of one route.
type RouteReport struct {
	Objects  int   `json:"objects"`
	Read     int64 `json:"read"`
	Accepted int64 `json:"accepted"`
	Rejected int64 `json:"rejected"`
}

// ShardReport is what a shard read for the events it owns, in this run.
// Every shard reads every object: the split by device keeps each device's
// events in one process, and reading is the price.
type ShardReport struct {
	Shard string `json:"shard"`
	// BytesRead is the stored bytes of the objects this run read or
	// skipped as done.
	BytesRead int64 `json:"bytes_read"`
	// EventsOwned are the records this shard read and owns (events_read of
	// this run); EventsOther those it read and left to the other shards.
	EventsOwned int64 `json:"events_owned"`
	EventsOther int64 `json:"events_other_shards"`
	// ReadAmplification is the records read per record owned: about the
	// number of shards, since each shard decodes the whole input.
	ReadAmplification float64 `json:"read_amplification"`
}

// ReasonCount is a rejection reason and how many records it hit.
type ReasonCount struct {
	Stage  string `json:"stage"`
	Reason string `json:"reason"`
	Count  int64  `json:"count"`
}

// RunReport holds this run's counters.
type RunReport struct {
	EventsRead     int64 `json:"events_read"`
	EventsAccepted int64 `json:"events_accepted"`
	EventsRejected int64 `json:"events_rejected"`
	EventsSkipped  int64 `json:"events_skipped"`
	Requests       int64 `json:"requests"`
	Responses429   int64 `json:"responses_429"`
	Retries        int64 `json:"retries"`
	// ProjectPushbacks counts project-level pushback: 429s naming none of
	// the request's ids, 503s, 504s and timeouts.
	ProjectPushbacks int64 `json:"project_pushbacks"`
}

// Err returns the error the report stands for: nil, ErrRejected,
// ErrObjects, or the run's own error.
func (r *Report) Err() error { return r.err }

func buildReport(cfg *Config, st *checkpoint.State, objs []pipeline.ObjectStat, stats *pipeline.Stats, plan *PlanResult, started time.Time, runErr error) *Report {
	now := time.Now()
	c := st.Counters
	r := &Report{
		SchemaVersion:      ReportSchemaVersion,
		EventsRead:         c.EventsRead,
		EventsAccepted:     c.EventsAccepted,
		EventsRejected:     c.EventsRejected,
		EventsSkipped:      c.EventsFiltered,
		DuplicateInsertIDs: c.Extra[pipeline.CounterDuplicateInsertIDs],
		RequestsBatch:      c.RequestsBatch,
		RequestsHTTPAPI:    c.RequestsHTTPAPI,
		Responses429:       c.Responses429,
		Responses5xx:       c.Responses5xx,
		Retries:            c.Retries,
		BytesSent:          c.BytesSent,
		EventsResent:       c.EventsResent,
		DurationSeconds:    now.Sub(started).Seconds(),
		Runs:               st.RunCount,
		StartedAt:          started,
		FinishedAt:         now,
		Routes:             map[string]RouteReport{},
		DeadLetterFile:     cfg.DeadLetter,
		Checkpoint:         redact.URL(cfg.Checkpoint),
		ReportFile:         cfg.ReportFile,
		Endpoint:           redact.URL(cfg.Endpoint),
		Run: RunReport{
			EventsRead:     stats.Read.Load(),
			EventsAccepted: stats.Accepted.Load(),
			EventsRejected: stats.Rejected.Load(),
			EventsSkipped:  stats.Skipped.Load(),
			Requests:       stats.RequestsBatch.Load() + stats.RequestsHTTPAPI.Load(),
			Responses429:   stats.Responses429.Load(),
			Retries:        stats.Retries.Load(),
		},
	}
	if !st.Started.IsZero() {
		r.JobSeconds = now.Sub(st.Started).Seconds()
	}
	r.Plan = st.Plan
	if _, n, err := ParseShard(cfg.Shard); err == nil && n > 1 {
		sr := &ShardReport{Shard: cfg.Shard, BytesRead: stats.BytesRead(), EventsOwned: r.Run.EventsRead, EventsOther: stats.Foreign.Load()}
		if sr.EventsOwned > 0 {
			sr.ReadAmplification = float64(sr.EventsOwned+sr.EventsOther) / float64(sr.EventsOwned)
		}
		r.Shard = sr
	}
	if h := stats.Hottest; h.Count > 0 {
		eps := cfg.pace().eps
		r.HottestID, r.HottestEvents = h.ID, h.Count
		r.LowerBoundSeconds = LowerBound(h.Count, eps).Seconds()
	}
	seen := map[string]bool{}
	for _, o := range objs {
		seen[o.URL] = true
		cp := st.Objects[o.URL]
		or := ObjectReport{URL: o.URL, Route: o.Route.String(), Error: o.Err}
		if cp != nil {
			or.Read, or.Accepted, or.Rejected, or.Skipped = cp.Read, cp.Accepted, cp.Rejected, cp.Filtered
		}
		switch {
		case o.Skipped:
			or.Status = "skipped"
			r.ObjectsSkipped++
		case o.Err != "":
			or.Status = "failed"
			r.ObjectsFailed++
		case cp != nil && cp.Done:
			or.Status = "done"
			r.ObjectsDone++
		default:
			or.Status = "partial"
		}
		if !o.Finished.IsZero() {
			or.Seconds = o.Finished.Sub(o.Started).Seconds()
		}
		r.Objects = append(r.Objects, or)
		rr := r.Routes[or.Route]
		rr.Objects++
		rr.Read += or.Read
		rr.Accepted += or.Accepted
		rr.Rejected += or.Rejected
		r.Routes[or.Route] = rr
	}
	// Objects of earlier runs that this run did not list (a narrower
	// source, or an interrupted listing) still count in the totals.
	for url, cp := range st.Objects {
		if seen[url] {
			continue
		}
		status := "partial"
		switch {
		case cp.Error != "":
			status = "failed"
			r.ObjectsFailed++
		case cp.Done:
			status = "done"
			r.ObjectsDone++
		}
		r.Objects = append(r.Objects, ObjectReport{URL: url, Status: status, Read: cp.Read, Accepted: cp.Accepted, Rejected: cp.Rejected, Skipped: cp.Filtered, Error: cp.Error})
	}
	sort.Slice(r.Objects, func(i, j int) bool { return r.Objects[i].URL < r.Objects[j].URL })
	r.ObjectsTotal = len(r.Objects)
	// Records read in this run but not settled (parked, or in flight at an
	// interruption) are not in the checkpoint's counters, which count only
	// settled records so that resumes never count a record twice.
	if pending := r.Run.EventsRead - r.Run.EventsAccepted - r.Run.EventsRejected - r.Run.EventsSkipped; pending > 0 {
		r.EventsRead += pending
	}
	r.EventsPending = r.EventsRead - r.EventsAccepted - r.EventsRejected - r.EventsSkipped
	if r.EventsRejected > 0 {
		if sum, _, err := deadletter.SummarizeFile(cfg.DeadLetter); err == nil {
			for _, rc := range sum.Top(10) {
				r.RejectionReasons = append(r.RejectionReasons, ReasonCount{Stage: string(rc.Stage), Reason: rc.Reason, Count: int64(rc.Count)})
			}
		}
	}

	switch {
	case runErr != nil:
		// Interrupted, Incomplete (ids parked) or Failed.
		r.Status, r.err = backfill.OutcomeOf(runErr), runErr
	case r.ObjectsFailed > 0:
		r.Status, r.err = StatusFailed, fmt.Errorf("%w: %d of %d objects could not be read (see the report); rerun to retry them", ErrObjects, r.ObjectsFailed, r.ObjectsTotal)
	case r.EventsRead != r.EventsAccepted+r.EventsRejected+r.EventsSkipped:
		// Not parked (that is runErr's ErrParked) and not interrupted:
		// records read but not settled are a failure to report as such,
		// not "incomplete, run again later".
		r.Status, r.err = StatusFailed, fmt.Errorf("%d events were read but not settled (events_read %d != events_accepted %d + events_rejected %d + events_skipped %d); the checkpoint is saved and a rerun sends them",
			r.EventsRead-r.EventsAccepted-r.EventsRejected-r.EventsSkipped, r.EventsRead, r.EventsAccepted, r.EventsRejected, r.EventsSkipped)
	case r.EventsRejected > 0:
		r.Status, r.err = StatusRejected, ErrRejected
	default:
		r.Status = StatusComplete
	}
	if r.err != nil {
		r.Error = redact.Text(r.err.Error(), cfg.APIKey)
	}
	return r
}

// WriteFile writes the report as indented JSON, atomically.
func (r *Report) WriteFile(name string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if dir := filepath.Dir(name); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// WriteSummary prints the human summary: totals, a table per object and
// route, the top rejection reasons and where the files are.
func (r *Report) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "\nbackfill %s in %s\n", strings.ReplaceAll(string(r.Status), "_", " "), time.Duration(r.DurationSeconds*float64(time.Second)).Round(time.Millisecond))
	fmt.Fprintf(w, "  events   read %d = accepted %d + rejected %d", r.EventsRead, r.EventsAccepted, r.EventsRejected)
	if r.EventsSkipped != 0 {
		fmt.Fprintf(w, " + skipped %d (excluded at the source)", r.EventsSkipped)
	}
	if r.EventsPending != 0 {
		fmt.Fprintf(w, " + pending %d", r.EventsPending)
	}
	fmt.Fprintln(w)
	if r.DuplicateInsertIDs > 0 {
		fmt.Fprintf(w, "  warning  %d events share their id and insert_id with a different earlier event; Amplitude keeps only the first (examples in the log)\n", r.DuplicateInsertIDs)
	}
	fmt.Fprintf(w, "  requests batch %d, httpapi %d; 429s %d; 5xx %d; retries %d\n", r.RequestsBatch, r.RequestsHTTPAPI, r.Responses429, r.Responses5xx, r.Retries)
	if r.EventsResent > 0 {
		fmt.Fprintf(w, "  re-sent  %d events after crashes (in flight when a run was killed)\n", r.EventsResent)
	}
	if r.HottestEvents > 0 {
		fmt.Fprintf(w, "  pace     lower bound %s (hottest id %s: %d events%s), actual %s\n",
			time.Duration(r.LowerBoundSeconds*float64(time.Second)), escape.Line(r.HottestID), r.HottestEvents, r.ceilingWhy(), time.Duration(r.DurationSeconds*float64(time.Second)).Round(time.Millisecond))
	}
	r.writeCeilings(w)
	fmt.Fprintf(w, "  objects  %d total, %d done, %d skipped (done earlier), %d failed\n", r.ObjectsTotal, r.ObjectsDone, r.ObjectsSkipped, r.ObjectsFailed)
	if s := r.Shard; s != nil {
		fmt.Fprintf(w, "  shard    %s read %s: %d events owned, %d left to the other shards (%.2f records read per record owned)\n",
			s.Shard, humanBytes(s.BytesRead), s.EventsOwned, s.EventsOther, s.ReadAmplification)
	}
	if r.Runs > 1 {
		fmt.Fprintf(w, "  job      %d runs; this run read %d, accepted %d, rejected %d\n", r.Runs, r.Run.EventsRead, r.Run.EventsAccepted, r.Run.EventsRejected)
	}
	if len(r.Objects) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "OBJECT\tROUTE\tSTATUS\tREAD\tACCEPTED\tREJECTED\tTIME\t")
		const maxRows = 20
		for i, o := range r.Objects {
			if i == maxRows {
				fmt.Fprintf(tw, "... %d more (see the JSON report)\t\t\t\t\t\t\t\n", len(r.Objects)-maxRows)
				break
			}
			secs := ""
			if o.Seconds > 0 {
				secs = fmt.Sprintf("%.1fs", o.Seconds)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t\n", escape.Line(shorten(o.URL, 60)), o.Route, o.Status, o.Read, o.Accepted, o.Rejected, secs)
		}
		routes := make([]string, 0, len(r.Routes))
		for k := range r.Routes {
			routes = append(routes, k)
		}
		sort.Strings(routes)
		for _, k := range routes {
			rr := r.Routes[k]
			fmt.Fprintf(tw, "(route total, %d objects)\t%s\t\t%d\t%d\t%d\t\t\n", rr.Objects, k, rr.Read, rr.Accepted, rr.Rejected)
		}
		tw.Flush()
	}
	for _, o := range r.Objects {
		if o.Error != "" {
			// Reader errors already start with the URL.
			fmt.Fprintf(w, "  failed: %s: %s\n", escape.Line(o.URL), escape.Line(strings.TrimPrefix(o.Error, o.URL+": ")))
		}
	}
	if len(r.RejectionReasons) > 0 {
		fmt.Fprintln(w, "\ntop rejection reasons:")
		for _, rc := range r.RejectionReasons {
			fmt.Fprintf(w, "  %7d  %s\n", rc.Count, escape.Line(rc.Reason))
		}
	}
	fmt.Fprintln(w)
	if r.EventsRejected > 0 {
		fmt.Fprintf(w, "dead-letter file: %s\n", escape.Line(r.DeadLetterFile))
	}
	if r.ReportFile != "" {
		fmt.Fprintf(w, "report:           %s\n", escape.Line(r.ReportFile))
	}
	fmt.Fprintf(w, "checkpoint:       %s\n", escape.Line(r.Checkpoint))
	if r.Error != "" && r.Status != StatusRejected {
		fmt.Fprintf(w, "\n%s\n", escape.Line(r.Error))
	}
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n+3:]
}

// MergeStates adds up the states of a job's shards (keyed by shard name)
// into one: objects are disjoint across shards, counters add up, and the
// job is complete when every shard is.
func MergeStates(states map[string]*checkpoint.State) *checkpoint.State {
	m := &checkpoint.State{Objects: map[string]*checkpoint.Object{}, Complete: len(states) > 0}
	for _, st := range states {
		for u, o := range st.Objects {
			mo := m.Objects[u]
			if mo == nil {
				c := *o
				c.Settled, c.Foreign = nil, 0
				m.Objects[u] = &c
				continue
			}
			// Every shard of a job split by device reads every object and
			// counts the records it owns.
			mo.Read += o.Read
			mo.Accepted += o.Accepted
			mo.Rejected += o.Rejected
			mo.Filtered += o.Filtered
			mo.Done = mo.Done && o.Done
			mo.Watermark = min(mo.Watermark, o.Watermark)
			mo.Total = max(mo.Total, o.Total)
			mo.Error = cmp.Or(mo.Error, o.Error)
		}
		m.Counters.Add(st.Counters)
		m.Plan = max(m.Plan, st.Plan)
		m.Complete = m.Complete && st.Complete
		m.RunCount = max(m.RunCount, st.RunCount)
		m.DeadLetterSize += st.DeadLetterSize
		if len(states) == 1 {
			m.DeadLetterFile = st.DeadLetterFile
		}
		m.Parked = append(m.Parked, st.Parked...)
		if m.Started.IsZero() || st.Started.Before(m.Started) {
			m.Started = st.Started
		}
		if st.Updated.After(m.Updated) {
			m.Updated = st.Updated
		}
	}
	m.Counters.EventsForeign = 0 // each shard's count of the others' events
	return m
}

// ReportFromState rebuilds a job's report from its checkpoint, for
// `backfill report`.
func ReportFromState(st *checkpoint.State, loc string) *Report {
	cfg := &Config{Checkpoint: loc, DeadLetter: st.DeadLetterFile}
	if isLocal(loc) {
		if cfg.DeadLetter == "" {
			cfg.DeadLetter = filepath.Join(localPath(loc), DeadLetterName)
		}
		cfg.ReportFile = filepath.Join(localPath(loc), ReportName)
	}
	var runErr error
	if !st.Complete {
		runErr = errors.New("the job is not complete: run it again to finish")
	}
	r := buildReport(cfg, st, nil, new(pipeline.Stats), nil, st.Started, runErr)
	if !st.Complete {
		r.Status = StatusIncomplete
	}
	r.DurationSeconds = st.Updated.Sub(st.Started).Seconds()
	r.FinishedAt = st.Updated
	return r
}
