package pipeline

import (
	"cmp"
	"context"
	"errors"
	"io"
	"slices"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/deadletter"
	"github.com/backfillhq/backfill/uploader"

	"github.com/backfillhq/backfill/internal/redact"
)

// refusedHold bounds the bytes of source records re-read for one object of
// one request and held until the object is checked again (see
// rejectRefused): beyond it the records held are checked and written, and
// reading goes on. A variable for tests.
var refusedHold = 8 << 20

// refused is one event the server refused, with what its dead-letter entry
// needs.
type refused struct {
	ev  *backfill.Event
	rej uploader.Rejection
}

// rejectRefused dead-letters the events the server refused with their
// source records: the lane keeps only the mapped events, so the records are
// read again from their objects by position, per object in record order and
// in one pass (Object.Open at the first one), and kept only if the object
// is still the version that was read (Object.Check, before and after). A
// record that cannot be had this way is dead-lettered with the event as it
// was sent, marked deadletter.DataSourceMapped with the reason: the entry
// is never lost. ctx ends the re-reading; the rest are written that way.
func (r *run) rejectRefused(ctx context.Context, evs []backfill.Event, rejs []uploader.Rejection) error {
	if len(rejs) == 0 {
		return nil
	}
	all := make([]refused, len(rejs))
	for i, rej := range rejs {
		all[i] = refused{ev: &evs[rej.Index], rej: rej}
	}
	slices.SortStableFunc(all, func(a, b refused) int {
		return cmp.Or(cmp.Compare(a.ev.Pos.Object, b.ev.Pos.Object), cmp.Compare(a.ev.Pos.Record, b.ev.Pos.Record))
	})
	for len(all) > 0 {
		n := 1
		for n < len(all) && all[n].ev.Pos.Object == all[0].ev.Pos.Object {
			n++
		}
		if err := r.rejectObject(ctx, all[:n]); err != nil {
			return err
		}
		all = all[n:]
	}
	return nil
}

// rejectObject dead-letters the refused events of one object (sorted by
// record), re-reading their records in one pass.
func (r *run) rejectObject(ctx context.Context, group []refused) error {
	url := group[0].ev.Pos.Object
	r.mu.Lock()
	obj, ok := r.sources[url]
	r.mu.Unlock()
	if !ok || obj.Open == nil {
		return r.rejectMapped(group, "the object was not read by this run")
	}
	check := func() error {
		if obj.Check == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		return obj.Check(ctx)
	}
	if err := check(); err != nil {
		return r.rejectMapped(group, reread(ctx, err))
	}
	dec, err := obj.Open(ctx, group[0].ev.Pos)
	if err != nil {
		return r.rejectMapped(group, reread(ctx, err))
	}
	defer dec.Close()

	var (
		held     [][]byte // source records of group[done:next]
		heldSize int
		done     int // group[:done] are written
		next     int // group[next] is the next record wanted
	)
	// flush writes the records held, once the object is checked again.
	flush := func() error {
		if done == next {
			return nil
		}
		var err error
		if cerr := check(); cerr != nil {
			err = r.rejectMapped(group[done:next], reread(ctx, cerr))
		} else {
			for i, data := range held {
				if err = r.rejectSource(group[done+i], data); err != nil {
					break
				}
			}
		}
		clear(held)
		done, held, heldSize = next, held[:0], 0
		return err
	}
	// missing dead-letters group[next:end] with the events as sent; the
	// records held before them are written first, in order.
	missing := func(end int, why string) error {
		if err := flush(); err != nil {
			return err
		}
		err := r.rejectMapped(group[next:end], why)
		done, next = end, end
		return err
	}
	// below is the end of the records wanted below record rec.
	below := func(rec int64) int {
		end := next
		for end < len(group) && group[end].ev.Pos.Record < rec {
			end++
		}
		return end
	}
	const moved = "the record is no longer at its position: the object changed since it was read"
	for next < len(group) {
		rec, err := dec.Next(ctx)
		var recErr *backfill.RecordError
		switch {
		case err == nil:
		case errors.As(err, &recErr):
			if end := below(recErr.Pos.Record); end > next {
				if err := missing(end, moved); err != nil {
					return err
				}
			}
			if end := below(recErr.Pos.Record + 1); end > next {
				if err := missing(end, "the record no longer decodes ("+recErr.Reason+"): the object changed since it was read"); err != nil {
					return err
				}
			}
			continue
		case err == io.EOF:
			if err := missing(len(group), "the object ends before the record: it changed since it was read"); err != nil {
				return err
			}
			continue
		default:
			if err := missing(len(group), reread(ctx, err)); err != nil {
				return err
			}
			continue
		}
		if end := below(rec.Pos.Record); end > next {
			if err := missing(end, moved); err != nil {
				return err
			}
		}
		for next < len(group) && group[next].ev.Pos.Record == rec.Pos.Record {
			held = append(held, rec.Data)
			heldSize += len(rec.Data)
			next++
		}
		if heldSize >= refusedHold {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// forgetDone drops the objects whose records are all settled from
// r.sources, so that it holds only the objects that may still have events
// waiting (and those finished since the last call).
func (r *run) forgetDone() {
	r.mu.Lock()
	urls := make([]string, 0, len(r.sources))
	for u := range r.sources {
		urls = append(urls, u)
	}
	r.mu.Unlock()
	for _, u := range urls {
		if r.deps.Tracker.Done(u) {
			r.mu.Lock()
			delete(r.sources, u)
			r.mu.Unlock()
		}
	}
}

// reread says why a source record could not be re-read.
func reread(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return "the run was stopped before the record was read again"
	}
	// An object's errors may quote URLs (a storage endpoint): their
	// credentials stay out of the dead-letter file.
	return "the source record could not be read again: " + redact.Text(err.Error(), "")
}

// rejectSource dead-letters a refused event with its source record.
func (r *run) rejectSource(f refused, data []byte) error {
	e := deadletter.NewEntry(f.ev.Pos, deadletter.StageServer, f.rej.Reason, deadletter.Unwrap(data))
	e.Status, e.InsertID = f.rej.Status, f.ev.InsertID
	e.DataSource, e.Sent = deadletter.DataSourceRecord, deadletter.RawData(f.ev.Raw)
	return r.write(f.ev.Pos, e)
}

// rejectMapped dead-letters refused events with the events as they were
// sent, saying why, and logs it once.
func (r *run) rejectMapped(group []refused, why string) error {
	if len(group) == 0 {
		return nil
	}
	r.log.Warn("refused events dead-lettered as they were sent, without their source records", "object", group[0].ev.Pos.Object, "events", len(group), "reason", why)
	for _, f := range group {
		e := deadletter.NewEntry(f.ev.Pos, deadletter.StageServer, f.rej.Reason, f.ev.Raw)
		e.Status, e.InsertID = f.rej.Status, f.ev.InsertID
		e.DataSource, e.DataSourceReason = deadletter.DataSourceMapped, why
		if err := r.write(f.ev.Pos, e); err != nil {
			return err
		}
	}
	return nil
}
