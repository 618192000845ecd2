package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/deadletter"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/uploader"
)

// source is an in-memory object of records: "dev:N" makes an event of
// device dev, "bad" a record the mapper rejects, "!" a decode error.
type source struct {
	url   string
	recs  []string
	route backfill.Route
}

type lister struct {
	objs []source
	i    int
}

func (l *lister) Next(ctx context.Context) (pipeline.Object, error) {
	if l.i == len(l.objs) {
		return pipeline.Object{}, io.EOF
	}
	o := l.objs[l.i]
	l.i++
	return pipeline.Object{URL: o.url, Fingerprint: "fp", Route: o.route, Open: func(ctx context.Context, start backfill.Position) (pipeline.Decoder, error) {
		return &decoder{o: o, i: int(start.Record)}, nil
	}}, nil
}

type decoder struct {
	o source
	i int
}

func (d *decoder) Next(ctx context.Context) (backfill.Record, error) {
	if d.i == len(d.o.recs) {
		return backfill.Record{}, io.EOF
	}
	pos := backfill.Position{Object: d.o.url, Record: int64(d.i), Offset: int64(d.i * 10), Line: int64(d.i + 1)}
	s := d.o.recs[d.i]
	d.i++
	if s == "!" {
		return backfill.Record{}, &backfill.RecordError{Pos: pos, Reason: "invalid JSON"}
	}
	return backfill.Record{Pos: pos, Data: []byte(s)}, nil
}

func (d *decoder) Close() error { return nil }

type mapper struct{}

func (mapper) Map(rec backfill.Record) (backfill.Event, error) {
	s := string(rec.Data)
	if s == "bad" {
		return backfill.Event{}, &backfill.RecordError{Pos: rec.Pos, Reason: "missing event_type"}
	}
	if s == "skip" {
		// What the mapping returns for a record excluded at the source.
		return backfill.Event{}, fmt.Errorf("map: %w", skipErr{})
	}
	if rest, ok := strings.CutPrefix(s, "dupe:"); ok {
		// "dupe:DEV:BODY": insert_id "same" for every such record.
		dev, body, _ := strings.Cut(rest, ":")
		return backfill.Event{Raw: []byte(`{"b":"` + body + `"}`), DeviceID: dev, InsertID: "same", Pos: rec.Pos}, nil
	}
	if dev, ok := strings.CutPrefix(s, "profile:"); ok {
		return backfill.Event{Raw: []byte(`{"p":1}`), DeviceID: dev, InsertID: "p-" + dev, EventType: "$identify", Profile: true, Pos: rec.Pos}, nil
	}
	dev, _, _ := strings.Cut(s, ":")
	return backfill.Event{Raw: []byte(`{"x":1}`), DeviceID: dev, InsertID: fmt.Sprint(rec.Pos.Object, rec.Pos.Record), Pos: rec.Pos}, nil
}

// skipErr is a pipeline.SkippedError, as mapping.Error is for a record
// excluded at the source.
type skipErr struct{}

func (skipErr) Error() string { return "skipped: excluded at the source" }
func (skipErr) Skipped() bool { return true }

var _ pipeline.SkippedError = skipErr{}

// sender is a fake Amplitude: it records what it accepted, throttles or
// parks devices on demand, and rejects events of device "srv-reject".
type sender struct {
	mu        sync.Mutex
	got       []backfill.Event
	routes    []backfill.Route
	throttle  map[string]int // device -> times to throttle
	park      map[string]bool
	block     chan struct{} // when set, Send waits on it
	inflight  int
	maxFlight int
}

func (s *sender) Send(ctx context.Context, route backfill.Route, evs []backfill.Event) (uploader.Result, error) {
	s.mu.Lock()
	s.inflight++
	s.maxFlight = max(s.maxFlight, s.inflight)
	block := s.block
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.inflight--; s.mu.Unlock() }()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return uploader.Result{}, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	res := uploader.Result{Stats: uploader.Stats{Requests: 1, Responses: map[int]int{200: 1}}}
	devs := map[string]bool{}
	for i, e := range evs {
		switch {
		case s.park[e.DeviceID]:
			res.Parked = append(res.Parked, i)
			res.QuotaDevices = append(res.QuotaDevices, e.DeviceID)
		case s.throttle[e.DeviceID] > 0:
			res.Throttled = append(res.Throttled, i)
			devs[e.DeviceID] = true
		case e.DeviceID == "srv-reject":
			res.Rejected = append(res.Rejected, uploader.Rejection{Index: i, Reason: "invalid field time", Status: 400})
		default:
			res.Accepted = append(res.Accepted, i)
			s.got = append(s.got, e)
			s.routes = append(s.routes, route)
		}
	}
	for d := range devs {
		s.throttle[d]--
		res.PauseDevices = append(res.PauseDevices, d)
		res.PauseFor = 10 * time.Millisecond
		res.Stats.Status429++
	}
	return res, nil
}

type memDL struct {
	mu      sync.Mutex
	entries []deadletter.Entry
	size    int64
}

func (d *memDL) Write(e deadletter.Entry) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.entries = append(d.entries, e)
	d.size += 100
	return nil
}
func (d *memDL) Size() int64          { d.mu.Lock(); defer d.mu.Unlock(); return d.size }
func (d *memDL) Sync() (int64, error) { return d.Size(), nil }

type harness struct {
	tracker *checkpoint.Tracker
	dl      *memDL
	snd     *sender
	saves   int
	state   checkpoint.State
}

func run(t *testing.T, hard, soft context.Context, objs []source, cfg pipeline.Config, snd *sender, loaded *checkpoint.State) (*harness, []pipeline.ObjectStat, error) {
	t.Helper()
	h := &harness{tracker: checkpoint.NewTracker(loaded), dl: &memDL{}, snd: snd}
	if cfg.Linger == 0 {
		cfg.Linger = time.Millisecond
	}
	cfg.SpillDir = t.TempDir()
	deps := pipeline.Deps{
		Objects:    &lister{objs: objs},
		Mapper:     mapper{},
		Sender:     snd,
		Tracker:    h.tracker,
		DeadLetter: h.dl,
		Save: func(ctx context.Context) error {
			h.saves++
			h.tracker.Fill(&h.state, nil)
			return nil
		},
	}
	st, err := pipeline.Run(hard, soft, cfg, deps, nil)
	return h, st, err
}

func records(dev string, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("%s:%d", dev, i))
	}
	return out
}

func mix(parts ...[]string) []string {
	// Interleave the parts round-robin, keeping each part's order.
	var out []string
	for i := 0; ; i++ {
		added := false
		for _, p := range parts {
			if i < len(p) {
				out = append(out, p[i])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

func checkOrder(t *testing.T, got []backfill.Event) {
	t.Helper()
	last := map[string]backfill.Position{}
	for _, e := range got {
		if p, ok := last[e.DeviceID]; ok && (p.Object > e.Pos.Object || p.Object == e.Pos.Object && p.Record >= e.Pos.Record) {
			t.Fatalf("device %s: %v after %v", e.DeviceID, e.Pos, p)
		}
		last[e.DeviceID] = e.Pos
	}
}

func TestRunSettlesEveryRecord(t *testing.T) {
	objs := []source{
		{url: "mem://a", recs: mix(records("device-1", 3000), records("device-2", 500), []string{"bad", "!", "srv-reject:1"})},
		{url: "mem://b", recs: mix(records("device-1", 100), records("device-3", 100))},
	}
	snd := &sender{throttle: map[string]int{"device-2": 2}}
	ctx := context.Background()
	h, stats, err := run(t, ctx, ctx, objs, pipeline.Config{Lanes: 4}, snd, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(snd.got), 3000+500+200; got != want {
		t.Fatalf("accepted %d, want %d", got, want)
	}
	checkOrder(t, snd.got)
	if got := len(h.dl.entries); got != 3 {
		t.Fatalf("dead-lettered %d, want 3: %+v", got, h.dl.entries)
	}
	stages := map[deadletter.Stage]int{}
	for _, e := range h.dl.entries {
		stages[e.Stage]++
	}
	if stages[deadletter.StageDecode] != 1 || stages[deadletter.StageValidate] != 1 || stages[deadletter.StageServer] != 1 {
		t.Fatalf("stages %v", stages)
	}
	c := h.state.Counters
	if c.EventsRead != 3703 || c.EventsAccepted != 3700 || c.EventsRejected != 3 {
		t.Fatalf("counters %+v", c)
	}
	if !h.state.Complete {
		t.Fatal("state not complete")
	}
	if len(stats) != 2 || stats[0].Err != "" {
		t.Fatalf("object stats %+v", stats)
	}
	if c.Responses429 != 2 {
		t.Fatalf("429s %d, want 2", c.Responses429)
	}
}

func TestRunResumeSkipsSettled(t *testing.T) {
	objs := []source{{url: "mem://a", recs: records("device-1", 100)}}
	ctx := context.Background()
	h, _, err := run(t, ctx, ctx, objs, pipeline.Config{}, &sender{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A second run over the finished job sends nothing.
	snd := &sender{}
	st := h.state
	h2, stats, err := run(t, ctx, ctx, objs, pipeline.Config{}, snd, &st)
	if err != nil {
		t.Fatal(err)
	}
	if len(snd.got) != 0 || !stats[0].Skipped {
		t.Fatalf("re-run sent %d events, stats %+v", len(snd.got), stats)
	}
	if h2.state.Counters.EventsAccepted != 100 {
		t.Fatalf("cumulative accepted %d", h2.state.Counters.EventsAccepted)
	}
}

func TestRunTailAfterBatch(t *testing.T) {
	objs := []source{
		{url: "mem://1-old", recs: records("device-1", 2000)},
		{url: "mem://2-new", recs: records("device-1", 50), route: backfill.RouteHTTP},
	}
	snd := &sender{}
	ctx := context.Background()
	if _, _, err := run(t, ctx, ctx, objs, pipeline.Config{Lanes: 3}, snd, nil); err != nil {
		t.Fatal(err)
	}
	checkOrder(t, snd.got)
	for i, e := range snd.got {
		want := backfill.RouteBatch
		if e.Pos.Object == "mem://2-new" {
			want = backfill.RouteHTTP
		}
		if snd.routes[i] != want {
			t.Fatalf("%v went to %v", e.Pos, snd.routes[i])
		}
	}
}

func TestRunParksQuotaIDs(t *testing.T) {
	objs := []source{{url: "mem://a", recs: mix(records("device-hot", 300), records("device-ok", 300))}}
	snd := &sender{park: map[string]bool{"device-hot": true}}
	ctx := context.Background()
	h, _, err := run(t, ctx, ctx, objs, pipeline.Config{}, snd, nil)
	if !errors.Is(err, pipeline.ErrParked) {
		t.Fatalf("err=%v, want ErrParked", err)
	}
	if len(snd.got) != 300 {
		t.Fatalf("accepted %d, want the 300 events of the other device", len(snd.got))
	}
	if h.state.Complete || h.state.Counters.EventsRead != 300 {
		t.Fatalf("state complete=%v counters %+v", h.state.Complete, h.state.Counters)
	}
	// A later run (quota reset) finishes the parked events only.
	snd2 := &sender{}
	st := h.state
	h2, _, err := run(t, ctx, ctx, objs, pipeline.Config{}, snd2, &st)
	if err != nil {
		t.Fatal(err)
	}
	if len(snd2.got) != 300 || !h2.state.Complete {
		t.Fatalf("resume sent %d, complete %v", len(snd2.got), h2.state.Complete)
	}
	for _, e := range snd2.got {
		if e.DeviceID != "device-hot" {
			t.Fatalf("resume re-sent %v", e.Pos)
		}
	}
}

func TestRunSoftStopFinishesInFlight(t *testing.T) {
	objs := []source{{url: "mem://a", recs: mix(records("device-1", 5000), records("device-2", 5000))}}
	block := make(chan struct{})
	snd := &sender{block: block}
	hard := context.Background()
	soft, stop := context.WithCancel(hard)
	done := make(chan struct{})
	var (
		h   *harness
		err error
	)
	go func() {
		defer close(done)
		h, _, err = run(t, hard, soft, objs, pipeline.Config{Lanes: 2}, snd, nil)
	}()
	// Wait until requests are in flight, then stop reading and let them
	// finish.
	for {
		snd.mu.Lock()
		n := snd.inflight
		snd.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	close(block)
	<-done
	if !errors.Is(err, pipeline.ErrInterrupted) {
		t.Fatalf("err=%v, want ErrInterrupted", err)
	}
	if len(snd.got) == 0 {
		t.Fatal("the requests in flight were not completed")
	}
	if got := h.state.Counters.EventsAccepted; got != int64(len(snd.got)) {
		t.Fatalf("checkpoint has %d accepted, server got %d", got, len(snd.got))
	}
	// Resuming sends exactly the rest.
	snd2 := &sender{}
	st := h.state
	if _, _, err := run(t, hard, hard, objs, pipeline.Config{Lanes: 2}, snd2, &st); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range append(append([]backfill.Event{}, snd.got...), snd2.got...) {
		if seen[e.InsertID] {
			t.Fatalf("%s sent twice", e.InsertID)
		}
		seen[e.InsertID] = true
	}
	if len(seen) != 10000 {
		t.Fatalf("%d distinct events sent, want 10000", len(seen))
	}
}

func TestRunOneRequestInFlightPerLane(t *testing.T) {
	var recs [][]string
	for d := 0; d < 50; d++ {
		recs = append(recs, records(fmt.Sprintf("device-%02d", d), 200))
	}
	objs := []source{{url: "mem://a", recs: mix(recs...)}}
	snd := &sender{}
	ctx := context.Background()
	if _, _, err := run(t, ctx, ctx, objs, pipeline.Config{Lanes: 3, BatchSize: 50}, snd, nil); err != nil {
		t.Fatal(err)
	}
	if snd.maxFlight > 3 {
		t.Fatalf("%d requests in flight with 3 lanes", snd.maxFlight)
	}
	checkOrder(t, snd.got)
}

// gatedLister opens its objects only once `want` opens are in progress at
// the same time: a reader that opened objects one at a time (one storage
// round trip each, in a row) never gets past the first.
type gatedLister struct {
	lister
	want    int
	mu      sync.Mutex
	started int
	gate    chan struct{}
}

func (l *gatedLister) Next(ctx context.Context) (pipeline.Object, error) {
	obj, err := l.lister.Next(ctx)
	if err != nil {
		return obj, err
	}
	open := obj.Open
	obj.Open = func(ctx context.Context, start backfill.Position) (pipeline.Decoder, error) {
		l.mu.Lock()
		l.started++
		if l.started == l.want {
			close(l.gate)
		}
		l.mu.Unlock()
		select {
		case <-l.gate:
			return open(ctx, start)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return obj, nil
}

func TestObjectsOpenedAhead(t *testing.T) {
	var objs []source
	for i := range 40 {
		objs = append(objs, source{url: fmt.Sprintf("s3://b/part-%02d", i), recs: []string{"d1:a", "d2:b", fmt.Sprintf("d%d:c", i)}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	snd := &sender{throttle: map[string]int{}}
	h := &harness{tracker: checkpoint.NewTracker(nil), dl: &memDL{}, snd: snd}
	deps := pipeline.Deps{
		Objects: &gatedLister{lister: lister{objs: objs}, want: 8, gate: make(chan struct{})},
		Mapper:  mapper{}, Sender: snd, Tracker: h.tracker, DeadLetter: h.dl,
		Save: func(context.Context) error { return nil },
	}
	st, err := pipeline.Run(ctx, ctx, pipeline.Config{Linger: time.Millisecond, SpillDir: t.TempDir()}, deps, nil)
	if err != nil {
		t.Fatalf("Run: %v (objects opened one at a time?)", err)
	}
	if len(snd.got) != 3*len(objs) {
		t.Fatalf("accepted %d events, want %d", len(snd.got), 3*len(objs))
	}
	// Objects are still read in listing order: each device's events arrive
	// in the order of their objects.
	last := map[string]string{}
	for _, e := range snd.got {
		if e.Pos.Object < last[e.DeviceID] {
			t.Fatalf("device %s: %s after %s", e.DeviceID, e.Pos.Object, last[e.DeviceID])
		}
		last[e.DeviceID] = e.Pos.Object
	}
	for i, o := range st {
		if o.URL != objs[i].url {
			t.Fatalf("object %d in the stats is %s, want %s", i, o.URL, objs[i].url)
		}
	}
}
