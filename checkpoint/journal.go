package checkpoint

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/backfillhq/backfill"
)

// Journal makes acknowledgements durable between checkpoint saves, so that
// what a killed run re-sends does not depend on the save interval.
//
// Before a lane sends a request it records the request's records (Sent)
// and waits (Wait) until everything recorded so far is durable; once the
// request settles it records which records were accepted (Acked). Entries
// are group-committed: one writer appends whatever the lanes queued since
// its last write, as one checksummed frame, and wakes every lane waiting
// for it. A lane therefore sends its next request only once the
// acknowledgements of its previous one are durable, and after a kill the
// only records sent again are the requests in flight: at most one per lane.
//
// The journal is kept in generations next to the state: an append-only
// file per generation in a local directory (one fsync per commit), one
// small object per commit in a bucket (objects cannot be appended to). Each
// save compacts the journal into the state: Compact, called from the
// save's Tracker.Fill hook, starts a new generation at the same instant the
// tracker's progress is taken, and Saved removes the generations the saved
// states no longer need (the previous state's are kept for Load's
// fallback). A resumed run replays the generations its state does not hold
// (OpenJournal) before reading anything.
//
// Each commit also records the pacing budgets' recent sends of the ids they
// track exactly (SetRecent), when they changed, so a resumed run starts
// within the per-id windows the killed run had started.
//
// Journal methods are safe for concurrent use.
type Journal struct {
	be  journalBackend
	run string // this run's id in the journal's names
	log *slog.Logger
	now func() time.Time
	t   *Tracker

	mu      sync.Mutex
	gen     int64
	cur     []byte  // entries of generation gen not committed yet
	queued  []chunk // entries of earlier generations not committed yet
	objs    map[string]uint64
	lastURL string
	lastIdx uint64
	lanes   map[int][]objRec // requests in flight: sent, not settled
	crashed map[objRec]struct{}
	resent  int64
	seq     uint64 // requests for a commit
	durable uint64 // the newest request a completed commit covered
	notify  chan struct{}
	broken  int64 // a generation whose write failed (0 if none)
	closing bool
	recent  func([]IDSends) []IDSends
	saved   int64 // the generation of the last state saved
	scratch []objRec
	spare   map[int][]objRec // per lane, for Sent
	fps     [16]fpScratch
	curFree []byte // a written buffer of cur, for reuse

	wake     chan struct{}
	loopDone chan struct{}
}

type chunk struct {
	gen  int64
	data []byte
}

// JournalOptions configure OpenJournal. The zero value is valid.
type JournalOptions struct {
	// Now is the clock of frame timestamps; default time.Now.
	Now func() time.Time
	// Logger receives write failures; default slog.Default().
	Logger *slog.Logger
}

// OpenJournal replays the journal generations st does not hold into t (a
// tracker made from st), then starts a new generation for this run and its
// group-commit writer. The caller must hold the store's lock. Close it at
// the end of the run, before the final save's Saved.
func (s *Store) OpenJournal(ctx context.Context, st *State, t *Tracker, opts JournalOptions) (*Journal, Replayed, error) {
	be := s.journalBackend(s.name)
	if be == nil {
		return nil, Replayed{}, fmt.Errorf("checkpoint %s: no journal storage", s)
	}
	parts, err := be.parts(ctx)
	if err != nil {
		return nil, Replayed{}, fmt.Errorf("list checkpoint journal %s: %w", s, err)
	}
	p := newReplayer(t)
	if err := p.replayParts(ctx, be, parts, st.JournalGen); err != nil {
		return nil, Replayed{}, err
	}
	gen := st.JournalGen
	for _, jp := range parts {
		gen = max(gen, jp.gen)
	}
	j := &Journal{
		be: be, run: newRunID(), log: cmpLogger(opts.Logger, s), now: opts.Now, t: t,
		gen:     gen + 1,
		objs:    map[string]uint64{},
		lanes:   map[int][]objRec{},
		spare:   map[int][]objRec{},
		crashed: p.crashed,
		resent:  p.out.Resent,
		notify:  make(chan struct{}),
		saved:   st.JournalGen,
		wake:    make(chan struct{}, 1),
	}
	if j.now == nil {
		j.now = time.Now
	}
	j.cur = append(j.cur, entBegin)
	j.loopDone = make(chan struct{})
	go j.loop()
	return j, p.out, nil
}

func cmpLogger(l *slog.Logger, s *Store) *slog.Logger {
	if l == nil {
		return s.log
	}
	return l.With(LogKeyComponent, "checkpoint", LogKeyStore, s.where)
}

// SetRecent sets the function that returns the budgets' recent sends
// (appended to its argument); each commit records them when they changed.
func (j *Journal) SetRecent(f func([]IDSends) []IDSends) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.recent = f
}

// Sent records that lane is about to send evs. Call Wait before sending,
// and Acked once the request settled.
func (j *Journal) Sent(lane int, evs []backfill.Event) {
	// Fingerprints come from the tracker before j.mu is taken: Compact
	// runs with the tracker's lock held and takes j.mu.
	// A request of tiny objects names hundreds of them: a map, not a list.
	fps := j.fps[lane%len(j.fps)].take()
	last := ""
	for i := range evs {
		u := evs[i].Pos.Object
		if u == last {
			continue
		}
		last = u
		if _, ok := fps[u]; !ok {
			fps[u], _ = j.t.Fingerprint(u)
		}
	}
	fpOf := func(u string) string { return fps[u] }
	j.mu.Lock()
	defer j.mu.Unlock()
	recs := j.spare[lane][:0]
	delete(j.spare, lane)
	for i := range evs {
		recs = append(recs, objRec{evs[i].Pos.Object, evs[i].Pos.Record})
	}
	if len(j.crashed) > 0 {
		for _, r := range recs {
			if _, ok := j.crashed[r]; ok {
				j.resent++
				delete(j.crashed, r)
			}
		}
	}
	j.lanes[lane] = recs
	j.appendRecords(entSent, lane, recs, fpOf)
	j.fps[lane%len(j.fps)].put(fps)
}

// fpScratch is a lane's reusable map of a request's objects to their
// fingerprints.
type fpScratch struct {
	mu sync.Mutex
	m  map[string]string
}

func (f *fpScratch) take() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.m
	f.m = nil
	if m == nil {
		m = make(map[string]string)
	}
	return m
}

func (f *fpScratch) put(m map[string]string) {
	clear(m)
	f.mu.Lock()
	f.m = m
	f.mu.Unlock()
}

// Acked records that lane's request settled with the records at accepted
// (indexes into the events given to Sent) accepted by the server. Call it
// after Tracker.SettleEvents, whatever the request's outcome.
func (j *Journal) Acked(lane int, accepted []int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	recs, ok := j.lanes[lane]
	if !ok {
		return
	}
	delete(j.lanes, lane)
	defer func() { j.spare[lane] = recs[:0] }() // reused by the lane's next Sent
	e := enc{b: j.cur}
	e.b = append(e.b, entAcked)
	e.uvarint(uint64(lane))
	if len(accepted) == len(recs) {
		e.uvarint(1)
	} else {
		e.uvarint(0)
		if !slices.IsSorted(accepted) {
			accepted = slices.Sorted(slices.Values(accepted))
		}
		accepted = slices.Compact(slices.Clip(accepted))
		for len(accepted) > 0 && (accepted[0] < 0 || accepted[len(accepted)-1] >= len(recs)) {
			accepted = slices.DeleteFunc(slices.Clone(accepted), func(i int) bool { return i < 0 || i >= len(recs) })
		}
		e.uvarint(uint64(len(accepted)))
		prev := -1
		for _, i := range accepted {
			e.uvarint(uint64(i - prev - 1))
			prev = i
		}
	}
	j.cur = e.b
	j.seq++
	j.kick()
}

// appendRecords appends an entry of records (Sent, Restated or Crashed),
// declaring the objects the current generation does not know yet. lane < 0
// omits the lane. j.mu must be held.
func (j *Journal) appendRecords(typ byte, lane int, recs []objRec, fpOf func(string) string) {
	e := enc{b: j.cur}
	for _, r := range recs {
		if r.url == j.lastURL {
			continue
		}
		if _, ok := j.objs[r.url]; !ok {
			idx := uint64(len(j.objs))
			j.objs[r.url] = idx
			e.b = append(e.b, entObject)
			e.uvarint(idx)
			e.str(r.url)
			e.str(fpOf(r.url))
		}
	}
	e.b = append(e.b, typ)
	if lane >= 0 {
		e.uvarint(uint64(lane))
	}
	e.uvarint(uint64(len(recs)))
	var prev int64
	for _, r := range recs {
		if r.url != j.lastURL {
			j.lastURL, j.lastIdx = r.url, j.objs[r.url]
		}
		e.uvarint(j.lastIdx)
		e.varint(r.rec - prev)
		prev = r.rec
	}
	j.cur = e.b
	j.seq++
	j.kick()
}

// kick wakes the writer. j.mu must be held.
func (j *Journal) kick() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// Wait returns once everything recorded before the call is durable, with
// the budgets' recent sends as of after the call. While the journal cannot
// be written (a failed write, until the next save starts a new generation)
// it returns at once: acknowledgements are then durable at the next save.
func (j *Journal) Wait(ctx context.Context) error {
	j.mu.Lock()
	if j.broken == j.gen || j.closing {
		j.mu.Unlock()
		return nil
	}
	j.seq++
	target := j.seq
	j.kick()
	for j.durable < target && j.broken != j.gen {
		ch := j.notify
		j.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		j.mu.Lock()
	}
	j.mu.Unlock()
	return nil
}

// loop is the group-commit writer.
func (j *Journal) loop() {
	defer close(j.loopDone)
	var lastRecent, frameBuf []byte
	parts := map[int64]int64{}
	for {
		<-j.wake
		j.mu.Lock()
		target, closing := j.seq, j.closing
		chunks := j.queued
		j.queued = nil
		if len(j.cur) > 0 || target != j.durable {
			chunks = append(chunks, chunk{j.gen, j.cur})
			j.cur, j.curFree = j.curFree, nil
		}
		recent, broken := j.recent, j.broken
		j.mu.Unlock()

		if recent != nil && len(chunks) > 0 {
			// Taken after the requests up to target: as new as any of them
			// needs.
			var e enc
			encodeRecent(&e, recent(nil))
			if !bytes.Equal(e.b, lastRecent) {
				last := &chunks[len(chunks)-1]
				last.data = append(last.data, e.b...)
				lastRecent = e.b
			}
		}
		failed := int64(0)
		var frame []byte
		for _, c := range chunks {
			if len(c.data) == 0 || c.gen == broken || c.gen == failed {
				continue
			}
			if cap(frameBuf) < frameHeader {
				frameBuf = make([]byte, frameHeader, 4096)
			}
			frame = frameBuf[:frameHeader]
			frame = append(binary.AppendUvarint(frame, uint64(j.now().UnixMilli())), c.data...)
			frameBuf = frame
			err := j.be.write(context.Background(), c.gen, j.run, parts[c.gen], sealFrame(frame))
			parts[c.gen]++
			if err != nil {
				failed = c.gen
				j.log.Warn("cannot write the checkpoint journal; acknowledgements become durable at the next checkpoint save instead", "generation", c.gen, LogKeyError, err)
				lastRecent = nil
			}
		}
		j.mu.Lock()
		if n := len(chunks); n > 0 && j.curFree == nil && cap(chunks[n-1].data) <= 1<<20 {
			j.curFree = chunks[n-1].data[:0] // written: free for the next entries
		}
		if failed != 0 {
			j.broken = failed
		}
		j.durable = max(j.durable, target)
		close(j.notify)
		j.notify = make(chan struct{})
		done := j.closing && closing && len(j.cur) == 0 && len(j.queued) == 0
		j.mu.Unlock()
		if done {
			return
		}
	}
}

// Compact starts a new generation as the tracker's progress is taken: call
// it from the Tracker.Fill hook of a save, so the new generation holds
// exactly what the saved state does not. It sets st's JournalGen, the
// re-sent events counter and the budgets' recent sends, and restates in the
// new generation the requests in flight and the records in flight at an
// earlier crash that are not settled yet.
func (j *Journal) Compact(st *State) {
	var recent []IDSends
	j.mu.Lock()
	if len(j.cur) > 0 {
		j.queued = append(j.queued, chunk{j.gen, j.cur})
	}
	j.gen++
	j.cur = nil
	clear(j.objs)
	j.lastURL = ""
	fpOf := func(u string) string {
		if o := st.Objects[u]; o != nil {
			return o.Fingerprint
		}
		return ""
	}
	for lane, recs := range j.lanes {
		j.appendRecords(entRestated, lane, recs, fpOf)
	}
	crashed := j.scratch[:0]
	for r := range j.crashed {
		if o := st.Objects[r.url]; o != nil && o.Skip(r.rec) {
			delete(j.crashed, r) // settled meanwhile (dead-lettered, say)
			continue
		}
		crashed = append(crashed, r)
	}
	if len(crashed) > 0 {
		j.appendRecords(entCrashed, -1, crashed, fpOf)
	}
	j.scratch = crashed[:0]
	st.JournalGen = j.gen
	st.Counters.EventsResent += j.resent
	recentFn := j.recent
	j.mu.Unlock()
	if recentFn != nil {
		recent = recentFn(nil)
	}
	if recent != nil {
		st.Recent = recent
	}
}

// Resent returns the records this run sent again after a crash, plus those
// the replayed journal counted; add it to the loaded state's counter.
func (j *Journal) Resent() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.resent
}

// Saved removes the generations no longer needed once st (filled with
// Compact) is saved: those below the previously saved state's, which Load
// may still fall back to.
func (j *Journal) Saved(ctx context.Context, st *State) error {
	j.mu.Lock()
	below := j.saved
	j.saved = st.JournalGen
	j.mu.Unlock()
	parts, err := j.be.parts(ctx)
	if err != nil {
		return fmt.Errorf("list checkpoint journal: %w", err)
	}
	for _, p := range parts {
		if p.gen >= below {
			break
		}
		if err := j.be.remove(ctx, p); err != nil {
			return fmt.Errorf("remove compacted checkpoint journal: %w", err)
		}
	}
	return nil
}

// Close writes what is queued and stops the writer.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closing {
		j.mu.Unlock()
		<-j.loopDone
		return nil
	}
	j.closing = true
	j.seq++
	j.kick()
	j.mu.Unlock()
	<-j.loopDone
	return j.be.close()
}
