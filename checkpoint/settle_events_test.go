package checkpoint_test

import (
	"math/rand"
	"reflect"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
)

// SettleEvents leaves the tracker exactly as Settle called for each record
// would, whatever the order of the batch, with records of several objects,
// repeated records and records settled already.
func TestSettleEventsMatchesSettle(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	objs := []string{"file:///a.jsonl", "file:///b.jsonl", "file:///c.jsonl"}
	for trial := range 200 {
		one, many := checkpoint.NewTracker(nil), checkpoint.NewTracker(nil)
		var read []backfill.Event
		next := map[string]int64{}
		for range 5 {
			// Read some more records of random objects.
			for range r.Intn(200) {
				o := objs[r.Intn(len(objs))]
				p := backfill.Position{Object: o, Record: next[o], Offset: next[o] * 10, Line: next[o] + 1}
				next[o]++
				one.Read(p)
				many.Read(p)
				read = append(read, backfill.Event{Pos: p})
			}
			// Settle a random batch, in random order, with repeats.
			var idx []int
			for range r.Intn(len(read) + 1) {
				idx = append(idx, r.Intn(len(read)))
			}
			want := 0
			for _, i := range idx {
				if one.Settle(read[i].Pos, checkpoint.Accepted) {
					want++
				}
			}
			if got := many.SettleEvents(read, idx, checkpoint.Accepted); got != want {
				t.Fatalf("trial %d: SettleEvents settled %d, Settle %d", trial, got, want)
			}
			if !reflect.DeepEqual(snap(one), snap(many)) {
				for _, o := range objs {
					t.Logf("%s\n%+v\n%+v", o, one.Snapshot()[o], many.Snapshot()[o])
				}
				t.Fatalf("trial %d: states differ", trial)
			}
			if !reflect.DeepEqual(one.Counters(), many.Counters()) {
				t.Fatalf("trial %d: counters differ: %+v vs %+v", trial, one.Counters(), many.Counters())
			}
		}
		// EOF and the rest: both end Done the same way.
		for _, o := range objs {
			one.EOF(o, next[o])
			many.EOF(o, next[o])
		}
		all := make([]int, len(read))
		for i := range all {
			all[i] = len(read) - 1 - i
		}
		for _, i := range all {
			one.Settle(read[i].Pos, checkpoint.Accepted)
		}
		many.SettleEvents(read, all, checkpoint.Accepted)
		if !reflect.DeepEqual(snap(one), snap(many)) {
			t.Fatalf("trial %d: final states differ", trial)
		}
	}
}

// snap is the tracker's state with empty range sets as nil (both are saved
// as no "settled" field).
func snap(tr *checkpoint.Tracker) map[string]*checkpoint.Object {
	m := tr.Snapshot()
	for _, o := range m {
		if len(o.Settled) == 0 {
			o.Settled = nil
		}
	}
	return m
}
