package checkpoint

import (
	"sync"

	"github.com/backfillhq/backfill"
)

// Outcome is how a record was settled.
type Outcome uint8

const (
	// Accepted means the server acknowledged the event.
	Accepted Outcome = iota + 1
	// Rejected means the record was written to the dead-letter file.
	Rejected
	// Filtered means the record was dropped on purpose (a filter rule) and
	// is neither sent nor dead-lettered.
	Filtered
	// Foreign means the record belongs to another shard of the job (see
	// backfill.ShardOf): this shard read it and left it to its owner. It is
	// settled for this shard's watermark but not counted as read.
	Foreign
)

// Start is what Tracker.Begin reports about an object.
type Start struct {
	// Resume is where the reader should restart (Record 0: the beginning).
	Resume backfill.Position
	// Done is set when the object was completed by an earlier run and needs
	// no reading at all.
	Done bool
	// Changed is set when the loaded progress was discarded because the
	// object's fingerprint changed since it was written.
	Changed bool
}

// Tracker is the in-memory progress of a run, safe for concurrent use. The
// pipeline calls Read for every record a reader produces and SettleEvents
// (or SettleWith) when the record's fate is final; records of one object
// settle out of order.
//
// Settling costs O(1) amortised per record, whatever the number of
// objects, their order and how many are open at once: the record is found
// among those in flight (pendingSet) and added to the object's settled set
// (settledSet), neither of which walks the object's other records.
//
// Memory is O(records in flight): a record is remembered from Read until
// it settles (see pendingSet: a long-unsettled record does not make the
// records read after it stay), and the settled records above an object's
// watermark are kept as a compact range set whose length is bounded by the
// gaps, which are records in flight.
//
// Resume positions are exact: Read remembers the offset of each record in
// flight, so when the watermark moves onto a record that was read the resume
// point is that record. When the watermark moves past everything read so far
// the resume point is the last record read (it is re-read and skipped).
type Tracker struct {
	mu       sync.Mutex
	objs     map[string]*track
	counters Counters
	// last is the track get returned last: records come in long runs of
	// one object, and this spares hashing its URL for each.
	lastObj string
	last    *track
	recs    []int64 // scratch of SettleEvents, reused under mu
}

// mark is where a record starts, in two words (it is held for every record
// in flight): a text record's byte offset and line, or, when a < 0, a
// Parquet record's row group (-1-a) and row.
type mark struct{ a, b int64 }

func markOf(p backfill.Position) mark {
	if p.Offset < 0 {
		return mark{a: -1 - int64(p.RowGroup), b: p.Row}
	}
	return mark{a: p.Offset, b: p.Line}
}

// set writes m as o's resume position.
func (m mark) set(o *Object) {
	if m.a < 0 {
		o.ResumeOffset, o.ResumeLine, o.ResumeRowGroup, o.ResumeRow = -1, 0, int(-1-m.a), m.b
		return
	}
	o.ResumeOffset, o.ResumeLine, o.ResumeRowGroup, o.ResumeRow = m.a, m.b, 0, 0
}

// track is an object's progress. obj.Settled is kept in settled while the
// tracker holds the object, and written back by snapshot.
type track struct {
	obj      Object
	settled  settledSet // settled records above obj.Watermark
	inflight pendingSet // read and not settled yet
	lastRec  int64      // highest record read in this run, -1 if none
	last     mark
}

// skip reports whether record r is settled.
func (tr *track) skip(r int64) bool {
	return tr.obj.Done || r < tr.obj.Watermark || tr.settled.contains(r)
}

// NewTracker returns a tracker seeded from a loaded state; loaded may be nil
// for a fresh run. The tracker takes its own copy of the objects and
// counters.
func NewTracker(loaded *State) *Tracker {
	t := &Tracker{objs: make(map[string]*track)}
	if loaded == nil {
		return t
	}
	for url, o := range loaded.Objects {
		tr := &track{obj: *o, settled: newSettledSet(o.Settled), lastRec: -1}
		tr.obj.Settled = nil
		t.objs[url] = tr
	}
	t.counters = loaded.Counters.clone()
	return t
}

func newTrack(fingerprint string) *track {
	return &track{
		obj:     Object{Fingerprint: fingerprint, ResumeOffset: -1, Total: -1},
		lastRec: -1,
	}
}

// get returns the object's track, creating it if needed. t.mu must be held.
func (t *Tracker) get(object string) *track {
	if t.last != nil && object == t.lastObj {
		return t.last
	}
	tr := t.objs[object]
	if tr == nil {
		tr = newTrack("")
		t.objs[object] = tr
	}
	t.lastObj, t.last = object, tr
	return tr
}

// Begin starts tracking object for this run and tells where to resume. If
// the loaded progress was recorded for another fingerprint (the object
// changed), that progress is discarded and Start.Changed is set; an empty
// fingerprint on either side skips the check. Begin clears the object's
// previous Error.
func (t *Tracker) Begin(object, fingerprint string) Start {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last = nil // the object's track may be replaced
	tr := t.objs[object]
	var changed bool
	switch {
	case tr == nil:
		tr = newTrack(fingerprint)
		t.objs[object] = tr
	case fingerprint != "" && tr.obj.Fingerprint != "" && tr.obj.Fingerprint != fingerprint:
		// The discarded progress leaves the job's event counters too, or
		// the records read again would be counted twice.
		t.counters.EventsRead -= tr.obj.Read
		t.counters.EventsAccepted -= tr.obj.Accepted
		t.counters.EventsRejected -= tr.obj.Rejected
		t.counters.EventsFiltered -= tr.obj.Filtered
		t.counters.EventsForeign -= tr.obj.Foreign
		tr = newTrack(fingerprint)
		t.objs[object] = tr
		changed = true
	case tr.obj.Fingerprint == "":
		tr.obj.Fingerprint = fingerprint
	}
	tr.obj.Error = ""
	return Start{Resume: tr.obj.ResumePosition(object), Done: tr.obj.Done, Changed: changed}
}

// Read registers a record produced by a reader and reports whether it is
// already settled (a resumed run re-reads records above the resume point):
// if skip is true the caller must drop the record and not Settle it. Call
// Read for every record produced, skipped or not, in reading order.
func (t *Tracker) Read(pos backfill.Position) (skip bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr := t.get(pos.Object)
	r := pos.Record
	if r > tr.lastRec {
		tr.lastRec, tr.last = r, markOf(pos)
	}
	if tr.skip(r) {
		return true
	}
	m := markOf(pos)
	tr.inflight.add(r, m)
	if r == tr.obj.Watermark {
		tr.setResume(r, m)
	}
	return false
}

// SettleWith marks a record settled with the given outcome, updating the
// object's and the job's counters in the same critical section, so a Fill
// always sees counters consistent with the settled positions. It returns
// false (and changes nothing) if the record was already settled.
//
// fn, if not nil, runs inside the critical section just before the record
// is settled, and only if it is not settled yet. Use it to write the
// dead-letter entry of a rejected record, so that a concurrent Fill never
// sees the entry without the settled record or the reverse. If fn fails
// the record stays unsettled and the error is returned.
func (t *Tracker) SettleWith(pos backfill.Position, outcome Outcome, fn func() error) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr := t.get(pos.Object)
	r := pos.Record
	if r < 0 || tr.skip(r) {
		return false, nil
	}
	if fn != nil {
		if err := fn(); err != nil {
			return false, err
		}
	}
	m, known := tr.inflight.take(r)
	t.settle(tr, r, m, known, outcome)
	return true, nil
}

// Settle is SettleWith without a function: it settles a record that needs
// no dead-letter entry (skipped at the source, or owned by another shard).
func (t *Tracker) Settle(pos backfill.Position, outcome Outcome) bool {
	ok, _ := t.SettleWith(pos, outcome, nil)
	return ok
}

// settle settles record r of tr, not settled yet, with outcome; m is r's
// mark if known (r was read in this run). t.mu must be held.
func (t *Tracker) settle(tr *track, r int64, m mark, known bool, outcome Outcome) {
	o := &tr.obj
	t.count(o, outcome, 1)
	if r != o.Watermark {
		tr.settled.add(r)
		return
	}
	w := tr.settled.advance(r + 1)
	tr.moveWatermark(w, m, known && r == w-1)
	tr.checkDone()
}

// count adds n settled records with outcome to o's and the job's counters.
func (t *Tracker) count(o *Object, outcome Outcome, n int64) {
	if outcome == Foreign {
		o.Foreign += n
		t.counters.EventsForeign += n
		return
	}
	o.Read += n
	t.counters.EventsRead += n
	switch outcome {
	case Accepted:
		o.Accepted += n
		t.counters.EventsAccepted += n
	case Rejected:
		o.Rejected += n
		t.counters.EventsRejected += n
	case Filtered:
		o.Filtered += n
		t.counters.EventsFiltered += n
	}
}

// moveWatermark advances the watermark to w and the resume point to where
// record w starts, as far as it is known: from w's own mark, the last
// record read, or m when lastKnown says m is the mark of record w-1.
func (tr *track) moveWatermark(w int64, m mark, lastKnown bool) {
	tr.obj.Watermark = w
	wm, wknown := tr.inflight.get(w)
	switch {
	case wknown:
		tr.setResume(w, wm)
	case tr.lastRec == w-1 && tr.lastRec >= 0:
		tr.setResume(tr.lastRec, tr.last)
	case lastKnown:
		tr.setResume(w-1, m)
	}
}

// setResume moves the resume point forward to record r at m.
func (tr *track) setResume(r int64, m mark) {
	o := &tr.obj
	if r < o.ResumeRecord || r > o.Watermark {
		return
	}
	o.ResumeRecord = r
	m.set(o)
}

func (tr *track) checkDone() {
	o := &tr.obj
	if o.Total >= 0 && o.Watermark >= o.Total && tr.settled.empty() {
		o.Done = true
		tr.inflight.reset()
		tr.settled.reset()
	}
}

// EOF records that object has total records; the object becomes Done once
// all of them are settled.
func (t *Tracker) EOF(object string, total int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr := t.get(object)
	tr.obj.Total = total
	tr.checkDone()
}

// Fail records an object-level error. Records settled before it stay
// settled; the object is not Done, so a later run retries it from its
// resume point. A nil err clears the error.
func (t *Tracker) Fail(object string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr := t.get(object)
	tr.obj.Error = ""
	if err != nil {
		tr.obj.Error = err.Error()
	}
}

// AddCounters adds d to the job counters. Leave the Events* fields of d at
// zero: Settle maintains them.
func (t *Tracker) AddCounters(d Counters) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counters.Add(d)
}

// snapshot returns a deep copy of every object's progress. t.mu must be
// held.
func (t *Tracker) snapshot() map[string]*Object {
	m := make(map[string]*Object, len(t.objs))
	for url, tr := range t.objs {
		o := tr.obj
		o.Settled = tr.settled.ranges()
		m[url] = &o
	}
	return m
}

// Done reports whether object is done: read to its end and every record
// settled.
func (t *Tracker) Done(object string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr := t.objs[object]
	return tr != nil && tr.obj.Done
}

// settledRecord reports whether record of object is settled.
func (t *Tracker) settledRecord(object string, record int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr := t.objs[object]
	return tr != nil && tr.skip(record)
}

// Fill sets st.Objects, st.Counters and st.Complete from one consistent
// snapshot. If hook is not nil it runs inside the same critical section,
// after those fields are set; use it to record the dead-letter file's
// logical size (deadletter.Writer.Size) so the state and the file agree.
// Complete is true when there is at least one object and all are Done.
func (t *Tracker) Fill(st *State, hook func(*State)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st.Objects = t.snapshot()
	st.Counters = t.counters.clone()
	st.Complete = len(t.objs) > 0
	for _, tr := range t.objs {
		if !tr.obj.Done {
			st.Complete = false
			break
		}
	}
	if hook != nil {
		hook(st)
	}
}

// Fingerprint returns the fingerprint recorded for object and whether the
// tracker knows the object (from the loaded state or this run).
func (t *Tracker) Fingerprint(object string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr := t.objs[object]
	if tr == nil {
		return "", false
	}
	return tr.obj.Fingerprint, true
}
