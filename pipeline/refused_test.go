package pipeline_test

import (
	"bytes"
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

// rereadObject is one object whose content may differ when it is opened
// again (to re-read the records of refused events).
type rereadObject struct {
	src     source
	later   []string // the records from the second Open on; nil: unchanged
	openErr error    // returned by the second Open on
	check   func() error

	mu     sync.Mutex
	opens  int
	checks int
}

type rereadLister struct {
	objs []*rereadObject
	i    int
}

func (l *rereadLister) Next(ctx context.Context) (pipeline.Object, error) {
	if l.i == len(l.objs) {
		return pipeline.Object{}, io.EOF
	}
	o := l.objs[l.i]
	l.i++
	obj := pipeline.Object{URL: o.src.url, Fingerprint: "fp", Open: func(ctx context.Context, start backfill.Position) (pipeline.Decoder, error) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.opens++
		src := o.src
		if o.opens > 1 {
			if o.openErr != nil {
				return nil, o.openErr
			}
			if o.later != nil {
				src.recs = o.later
			}
		}
		return &decoder{o: src, i: int(start.Record)}, nil
	}}
	obj.Check = func(ctx context.Context) error {
		o.mu.Lock()
		o.checks++
		o.mu.Unlock()
		if o.check == nil {
			return nil
		}
		return o.check()
	}
	return obj, nil
}

// refuser accepts every event but those of device "srv-reject" (400).
type refuser struct {
	mu       sync.Mutex
	refusing int // requests with refused events
}

func (s *refuser) Send(ctx context.Context, route backfill.Route, evs []backfill.Event) (uploader.Result, error) {
	res := uploader.Result{Stats: uploader.Stats{Requests: 1, Responses: map[int]int{200: 1}}}
	for i, e := range evs {
		if e.DeviceID == "srv-reject" {
			res.Rejected = append(res.Rejected, uploader.Rejection{Index: i, Reason: "silenced device", Status: 400})
		} else {
			res.Accepted = append(res.Accepted, i)
		}
	}
	if len(res.Rejected) > 0 {
		s.mu.Lock()
		s.refusing++
		s.mu.Unlock()
	}
	return res, nil
}

// TestRefusedEventsKeepTheSourceRecord: the dead-letter entry of an event
// the server refused holds the record as the source had it (re-read from
// its object, in one pass per object and request), with the event as sent
// beside it; when the object cannot give the same record back (changed,
// gone, truncated, garbled, the run stopped) the entry holds the event as
// sent and says why. No entry is ever lost.
func TestRefusedEventsKeepTheSourceRecord(t *testing.T) {
	recs := func() []string {
		var out []string
		for i := range 40 {
			if i%5 == 2 {
				out = append(out, fmt.Sprintf("srv-reject:%d:\xffraw", i)) // not UTF-8: kept in data_base64
			} else {
				out = append(out, fmt.Sprintf("device-%d:%d", i%3, i))
			}
		}
		return out
	}
	changed := errors.New("object changed since it was listed: mem://a was 10 bytes, now 12")
	tests := []struct {
		name string
		obj  func(o *rereadObject, cancel context.CancelFunc)
		// source reports whether the record of refused record i is kept.
		source func(i int) bool
		reason string // in data_source_reason of the others
	}{
		{"Unchanged", func(*rereadObject, context.CancelFunc) {}, func(int) bool { return true }, ""},
		// Records held beyond the bound are checked and written, then
		// reading goes on: one check per record here.
		{"HeldInSteps", func(*rereadObject, context.CancelFunc) {}, func(int) bool { return true }, ""},
		{"Changed", func(o *rereadObject, _ context.CancelFunc) { o.check = func() error { return changed } },
			func(int) bool { return false }, "could not be read again: object changed since it was listed"},
		{"Vanished", func(o *rereadObject, _ context.CancelFunc) { o.openErr = errors.New("not found") },
			func(int) bool { return false }, "could not be read again: not found"},
		{"Truncated", func(o *rereadObject, _ context.CancelFunc) { o.later = o.src.recs[:20] },
			func(i int) bool { return i < 20 }, "ends before the record"},
		{"Garbled", func(o *rereadObject, _ context.CancelFunc) {
			o.later = append([]string(nil), o.src.recs...)
			o.later[12] = "!"
		}, func(i int) bool { return i != 12 }, "no longer decodes (invalid JSON)"},
		{"Stopped", func(o *rereadObject, cancel context.CancelFunc) {
			o.check = func() error { cancel(); return nil }
		}, func(int) bool { return false }, "the run was stopped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hard, cancel := context.WithCancel(context.Background())
			defer cancel()
			o := &rereadObject{src: source{url: "mem://a", recs: recs()}}
			tt.obj(o, cancel)
			if tt.name == "HeldInSteps" {
				defer pipeline.SetRefusedHold(1)()
			}
			dl, snd := &memDL{}, &refuser{}
			_, err := pipeline.Run(hard, hard, pipeline.Config{Lanes: 2, Linger: time.Millisecond, SpillDir: t.TempDir()}, pipeline.Deps{
				Objects: &rereadLister{objs: []*rereadObject{o}}, Mapper: mapper{}, Sender: snd,
				Tracker: checkpoint.NewTracker(nil), DeadLetter: dl, Save: func(context.Context) error { return nil },
			}, nil)
			if err != nil && tt.name != "Stopped" {
				t.Fatal(err)
			}
			got := map[int64]deadletter.Entry{}
			for _, e := range dl.entries {
				if e.Stage != deadletter.StageServer || e.Status != 400 || e.Reason != "silenced device" {
					t.Errorf("entry %+v: want a server entry with status 400 and the server's reason", e)
				}
				got[e.Record] = e
			}
			for i, rec := range o.src.recs {
				if !strings.HasPrefix(rec, "srv-reject") {
					continue
				}
				e, ok := got[int64(i)]
				if !ok {
					if tt.name == "Stopped" {
						continue // the run stopped before that request was sent
					}
					t.Errorf("record %d: no dead-letter entry", i)
					continue
				}
				if tt.source(i) {
					if e.DataSource != deadletter.DataSourceRecord || !bytes.Equal(e.Bytes(), []byte(rec)) || string(e.Sent) != `{"x":1}` || e.DataSourceReason != "" {
						t.Errorf("record %d: data_source %q, data %q (exact %q), sent %s; want the source record %q and the event as sent", i, e.DataSource, e.Data, e.Bytes(), e.Sent, rec)
					}
					continue
				}
				if e.DataSource != deadletter.DataSourceMapped || string(e.Bytes()) != `{"x":1}` || e.Sent != nil || !strings.Contains(e.DataSourceReason, tt.reason) {
					t.Errorf("record %d: data_source %q (%q), data %s, sent %s; want the event as sent and a reason with %q", i, e.DataSource, e.DataSourceReason, e.Data, e.Sent, tt.reason)
				}
			}
			if tt.name != "Stopped" && len(got) != 8 || len(got) == 0 {
				t.Errorf("%d server entries, want 8", len(got))
			}
			if tt.name == "HeldInSteps" && o.checks != snd.refusing+8 {
				t.Errorf("object checked %d times for %d requests with 8 refused events, want one check before each pass and one after each record", o.checks, snd.refusing)
			}
			// One pass per object and request with refused events, after
			// the first read.
			if o.opens-1 > snd.refusing || o.opens < 2 && tt.name != "Changed" {
				t.Errorf("object opened %d times for %d requests with refused events", o.opens, snd.refusing)
			}
		})
	}
}
