package checkpoint

import (
	"context"
	"fmt"
	"time"

	"github.com/backfillhq/backfill"
)

// IDSends is what one device or user id recently spent of its budget on a
// route, kept in the checkpoint (and the journal) so that a resumed run
// starts with the budget the killed one had used (see chunker.Budget.Seed).
type IDSends struct {
	Route string `json:"route"` // "batch" or "http"
	Kind  string `json:"kind"`  // "device" or "user"
	ID    string `json:"id"`
	// Sends are (unix second, events) steps, oldest first. A step at second
	// 0 (chunker.InFlight) holds events that were in flight when the
	// snapshot was taken: a resumed run counts them from its start.
	Sends [][2]int64 `json:"sends"`
}

// Replayed is what the journal of earlier runs held beyond their state.
type Replayed struct {
	// Generations is the number of journal generations read.
	Generations int
	// Runs counts the runs that began after the state was saved and ended
	// before saving one: add it to the state's RunCount.
	Runs int
	// Settled counts the records the journal held as accepted that the
	// state did not: acknowledged after its last save.
	Settled int64
	// Crashed counts the records in flight at a crash and not sent again
	// since: the next run sends them again.
	Crashed int
	// Resent counts the sends, after the state was taken, of records in
	// flight at an earlier crash.
	Resent int64
	// Resend counts the records the next run sends again: sent by the runs
	// the journal covers and not settled, because they were in flight at a
	// crash (Crashed) or answered without being accepted (refused,
	// throttled or parked, and not dead-lettered in the state). After Load
	// fell back to the previous state it is exactly what the fallback
	// costs in sends, beyond what the newest state would have re-sent.
	Resend int
	// Recent is the newest snapshot of the budgets' recent sends, nil if
	// the journal holds none (the state's then apply).
	Recent []IDSends
	// LastActive is the time of the newest journal frame, zero if none.
	LastActive time.Time
	// Torn is set when a generation ended in a frame cut short by a crash.
	Torn bool
}

// objRec names one record of one object.
type objRec struct {
	url string
	rec int64
}

type jobject struct{ url, fp string }

// replayer applies journal generations, in order, to a tracker.
type replayer struct {
	t       *Tracker
	out     Replayed
	objs    map[uint64]jobject // of the generation being read
	lanes   map[uint64][]objRec
	crashed map[objRec]struct{}
	unacked map[objRec]struct{} // answered, not accepted, not accepted since
	evs     []backfill.Event    // scratch for SettleEvents
	idx     []int
}

func newReplayer(t *Tracker) *replayer {
	return &replayer{t: t, lanes: map[uint64][]objRec{}, crashed: map[objRec]struct{}{}, unacked: map[objRec]struct{}{}}
}

// replayParts reads and applies every part of gens >= from.
func (p *replayer) replayParts(ctx context.Context, be journalBackend, parts []journalPart, from int64) error {
	var cur journalPart
	cur.gen = -1
	torn := false
	for _, jp := range parts {
		if jp.gen < from {
			continue
		}
		if !jp.sameGen(cur) {
			cur, torn = jp, false
			p.objs = map[uint64]jobject{}
			p.out.Generations++
		}
		if torn {
			continue // the generation ended at the damaged frame
		}
		data, err := be.read(ctx, jp)
		if isNotExist(err) {
			continue // removed by a run compacting it meanwhile
		}
		if err != nil {
			return fmt.Errorf("read checkpoint journal: %w", err)
		}
		for len(data) > 0 {
			payload, rest, err := nextFrame(data)
			if err != nil {
				torn = true
				p.out.Torn = true
				break
			}
			data = rest
			if err := p.frame(payload); err != nil {
				return err
			}
		}
	}
	p.crash()
	p.out.Crashed = len(p.crashed)
	p.out.Resend = p.resend()
	return nil
}

// resend counts the records in flight at a crash or answered without being
// accepted that the tracker does not hold as settled.
func (p *replayer) resend() int {
	n := 0
	for r := range p.crashed {
		if p.t == nil || !p.t.settledRecord(r.url, r.rec) {
			n++
		}
	}
	for r := range p.unacked {
		if _, dup := p.crashed[r]; dup {
			continue
		}
		if p.t == nil || !p.t.settledRecord(r.url, r.rec) {
			n++
		}
	}
	return n
}

// crash moves every request in flight to the crashed records: the run that
// sent them ended before they settled.
func (p *replayer) crash() {
	for lane, recs := range p.lanes {
		for _, r := range recs {
			p.crashed[r] = struct{}{}
		}
		delete(p.lanes, lane)
	}
}

func (p *replayer) frame(payload []byte) error {
	d := &dec{b: payload}
	ms := d.uvarint()
	if t := time.UnixMilli(int64(ms)); t.After(p.out.LastActive) {
		p.out.LastActive = t
	}
	for d.err == nil && len(d.b) > 0 {
		switch typ := d.byte(); typ {
		case entBegin:
			p.crash()
			p.out.Runs++
		case entObject:
			idx, url, fp := d.uvarint(), d.str(), d.str()
			if d.err == nil {
				p.objs[idx] = jobject{url, fp}
				if p.t != nil {
					p.t.Begin(url, fp)
				}
			}
		case entSent, entRestated:
			lane := d.uvarint()
			recs := p.records(d)
			if typ == entSent {
				for _, r := range recs {
					if _, ok := p.crashed[r]; ok {
						p.out.Resent++
						delete(p.crashed, r)
					}
				}
			}
			p.lanes[lane] = recs
		case entCrashed:
			for _, r := range p.records(d) {
				p.crashed[r] = struct{}{}
			}
		case entAcked:
			lane := d.uvarint()
			recs := p.lanes[lane]
			delete(p.lanes, lane)
			if d.uvarint() == 1 {
				p.settle(recs, nil)
				break
			}
			n := d.count()
			idx := p.idx[:0]
			i := int64(-1)
			for range n {
				i += int64(d.uvarint()) + 1
				if i >= int64(len(recs)) {
					d.fail()
					break
				}
				idx = append(idx, int(i))
			}
			p.idx = idx
			if d.err == nil {
				p.unanswered(recs, idx)
				p.settle(recs, idx)
			}
		case entRecent:
			p.out.Recent = decodeRecent(d)
		default:
			d.fail()
		}
	}
	if d.err != nil {
		return fmt.Errorf("checkpoint journal: %w", d.err)
	}
	return nil
}

// records decodes n (object, record) pairs.
func (p *replayer) records(d *dec) []objRec {
	n := d.count()
	out := make([]objRec, 0, n)
	var rec int64
	for range n {
		o := d.uvarint()
		rec += d.varint()
		obj, ok := p.objs[o]
		if !ok {
			d.fail()
		}
		if d.err != nil {
			return nil
		}
		out = append(out, objRec{obj.url, rec})
	}
	return out
}

// unanswered remembers the records of recs that idx (sorted) does not
// accept: sent, answered and not accepted.
func (p *replayer) unanswered(recs []objRec, idx []int) {
	j := 0
	for i, r := range recs {
		if j < len(idx) && idx[j] == i {
			j++
			continue
		}
		p.unacked[r] = struct{}{}
	}
}

// settle settles recs[idx...] (every one of recs if idx is nil) as
// accepted.
func (p *replayer) settle(recs []objRec, idx []int) {
	if idx == nil {
		idx = p.idx[:0]
		for i := range recs {
			idx = append(idx, i)
		}
		p.idx = idx
	}
	for _, i := range idx {
		delete(p.crashed, recs[i])
		delete(p.unacked, recs[i])
	}
	if p.t == nil {
		return
	}
	evs := p.evs[:0]
	for _, r := range recs {
		evs = append(evs, backfill.Event{Pos: backfill.Position{Object: r.url, Record: r.rec}})
	}
	p.evs = evs
	p.out.Settled += int64(p.t.SettleEvents(evs, idx, Accepted))
	clear(evs)
}

func encodeRecent(e *enc, rs []IDSends) {
	e.b = append(e.b, entRecent)
	e.uvarint(uint64(len(rs)))
	for _, r := range rs {
		e.str(r.Route)
		e.str(r.Kind)
		e.str(r.ID)
		e.uvarint(uint64(len(r.Sends)))
		var sec int64
		for _, s := range r.Sends {
			e.varint(s[0] - sec)
			sec = s[0]
			e.varint(s[1])
		}
	}
}

func decodeRecent(d *dec) []IDSends {
	n := d.count()
	out := make([]IDSends, 0, n)
	for range n {
		r := IDSends{Route: d.str(), Kind: d.str(), ID: d.str()}
		m := d.count()
		var sec int64
		for range m {
			sec += d.varint()
			r.Sends = append(r.Sends, [2]int64{sec, d.varint()})
		}
		if d.err != nil {
			return nil
		}
		out = append(out, r)
	}
	return out
}

// Recover loads the newest state like Load and applies the journal written
// since it was saved, without changing anything: the progress a resumed run
// would start from (for `backfill status` and tests). It also reports what
// the journal held.
func (s *Store) Recover(ctx context.Context) (*State, Replayed, error) {
	st, err := s.Load(ctx)
	if err != nil {
		return nil, Replayed{}, err
	}
	return s.recover(ctx, s.name, st)
}

// RecoverAll is LoadAll with each state recovered as by Recover.
func (s *Store) RecoverAll(ctx context.Context) (map[string]*State, error) {
	states, err := s.LoadAll(ctx)
	if err != nil {
		return nil, err
	}
	for name, st := range states {
		if states[name], _, err = s.recover(ctx, name, st); err != nil {
			return nil, err
		}
	}
	return states, nil
}

func (s *Store) recover(ctx context.Context, name string, st *State) (*State, Replayed, error) {
	be := s.journalBackend(name)
	if be == nil {
		return st, Replayed{}, nil
	}
	parts, err := be.parts(ctx)
	if err != nil {
		return nil, Replayed{}, fmt.Errorf("list checkpoint journal %s: %w", s, err)
	}
	t := NewTracker(st)
	p := newReplayer(t)
	if err := p.replayParts(ctx, be, parts, st.JournalGen); err != nil {
		return nil, Replayed{}, err
	}
	out := *st
	t.Fill(&out, nil)
	out.Counters.EventsResent += p.out.Resent
	out.RunCount += p.out.Runs
	if p.out.Recent != nil {
		out.Recent = p.out.Recent
	}
	return &out, p.out, nil
}
