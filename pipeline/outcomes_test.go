package pipeline_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/backfillhq/backfill/pipeline"
)

// Records the source excluded from Amplitude are settled as skipped: never
// sent, never dead-lettered, counted so that read = accepted + rejected +
// skipped, and a resumed run does not read them again.
func TestRunSkippedOutcome(t *testing.T) {
	objs := []source{{url: "mem://a", recs: []string{"device-1:0", "skip", "bad", "skip", "device-1:1"}}}
	snd := &sender{}
	ctx := context.Background()
	h, _, err := run(t, ctx, ctx, objs, pipeline.Config{Lanes: 2}, snd, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := h.state.Counters
	if c.EventsRead != 5 || c.EventsAccepted != 2 || c.EventsRejected != 1 || c.EventsFiltered != 2 {
		t.Fatalf("counters %+v, want read 5 = accepted 2 + rejected 1 + skipped 2", c)
	}
	if len(h.dl.entries) != 1 || len(snd.got) != 2 {
		t.Fatalf("dead-lettered %d, sent %d", len(h.dl.entries), len(snd.got))
	}
	if o := h.state.Objects["mem://a"]; o == nil || !o.Done || o.Filtered != 2 {
		t.Fatalf("object state %+v", o)
	}
	if !h.state.Complete {
		t.Fatal("not complete")
	}
}

// Different events that share a device and an insert_id are counted (in
// the checkpoint's counters, so the report has them); identical copies and
// other devices' events with the same id are not.
func TestRunDuplicateInsertIDs(t *testing.T) {
	objs := []source{
		{url: "mem://a", recs: []string{"dupe:device-1:a", "dupe:device-1:b", "dupe:device-1:a", "dupe:device-2:b"}},
		{url: "mem://b", recs: []string{"dupe:device-2:c", "device-3:0"}},
	}
	ctx := context.Background()
	h, _, err := run(t, ctx, ctx, objs, pipeline.Config{Lanes: 2}, &sender{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.state.Counters.Extra[pipeline.CounterDuplicateInsertIDs]; got != 2 {
		t.Fatalf("duplicate insert_ids %d, want 2 (device-1 a/b, device-2 b/c)", got)
	}
	// Off: nothing counted.
	h, _, err = run(t, ctx, ctx, objs, pipeline.Config{Lanes: 2, DupeSlots: -1}, &sender{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.state.Counters.Extra[pipeline.CounterDuplicateInsertIDs]; got != 0 {
		t.Fatalf("duplicate insert_ids %d with the detector off", got)
	}
}

// The detector's memory is bounded: with a tiny table, a conflicting pair
// far apart in the input is forgotten rather than the table growing; a
// close pair is still found.
func TestRunDuplicateInsertIDsBounded(t *testing.T) {
	var recs []string
	recs = append(recs, "dupe:device-0:a")
	for i := 1; i <= 64; i++ {
		recs = append(recs, fmt.Sprintf("dupe:device-%d:a", i))
	}
	recs = append(recs, "dupe:device-0:b", "dupe:device-64:b")
	ctx := context.Background()
	h, _, err := run(t, ctx, ctx, []source{{url: "mem://a", recs: recs}}, pipeline.Config{Lanes: 2, DupeSlots: 8}, &sender{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.state.Counters.Extra[pipeline.CounterDuplicateInsertIDs]; got < 1 || got > 2 {
		t.Fatalf("duplicate insert_ids %d, want the close pair (and at most the far one)", got)
	}
}

// Profiles read before the first other event are all accepted before it is
// sent, whichever lanes they are in.
func TestRunProfilesFirst(t *testing.T) {
	var recs []string
	for i := 0; i < 40; i++ {
		recs = append(recs, fmt.Sprintf("profile:user-%02d", i))
	}
	objs := []source{{url: "mem://people", recs: recs}, {url: "mem://events", recs: mix(records("device-1", 200), records("device-2", 200))}}
	snd := &sender{}
	ctx := context.Background()
	if _, _, err := run(t, ctx, ctx, objs, pipeline.Config{Lanes: 8}, snd, nil); err != nil {
		t.Fatal(err)
	}
	if len(snd.got) != 440 {
		t.Fatalf("sent %d", len(snd.got))
	}
	for i, e := range snd.got {
		if e.Profile != (i < 40) {
			t.Fatalf("event %d (%s, profile %v) out of place: profiles must all come first", i, e.DeviceID, e.Profile)
		}
	}
}
