package pipeline_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/pipeline"
)

// TestRunShardsSplitByDevice runs three shards over the same objects, each
// with its own tracker: every event is sent by exactly one shard, the
// shard of its device, in source order; each record that fails is
// dead-lettered by exactly one shard; every shard's checkpoint ends
// complete, counting only what it owns.
func TestRunShardsSplitByDevice(t *testing.T) {
	var devs [][]string
	for d := range 30 {
		devs = append(devs, records(fmt.Sprintf("device-%02d", d), 40))
	}
	objs := []source{
		{url: "mem://a", recs: append(mix(devs[:20]...), "bad", "!", "bad")},
		{url: "mem://b", recs: append(mix(devs[10:]...), "!", "srv-reject:1")},
	}
	var total, failed int
	for _, o := range objs {
		for _, r := range o.recs {
			if r == "bad" || r == "!" || r == "srv-reject:1" {
				failed++
			} else {
				total++
			}
		}
	}
	const n = 3
	ctx := context.Background()
	owner := map[string]int{} // device -> shard that sent it
	sent, rejected := map[string]int{}, 0
	for shard := range n {
		snd := &sender{}
		h, _, err := run(t, ctx, ctx, objs, pipeline.Config{Lanes: 4, Shard: shard, Shards: n}, snd, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkOrder(t, snd.got)
		for _, e := range snd.got {
			if got := backfill.ShardOf(e.DeviceID, n); got != shard {
				t.Fatalf("shard %d sent %s of device %s, owned by shard %d", shard, e.InsertID, e.DeviceID, got)
			}
			if s, ok := owner[e.DeviceID]; ok && s != shard {
				t.Fatalf("device %s sent by shards %d and %d", e.DeviceID, s, shard)
			}
			owner[e.DeviceID] = shard
			sent[e.InsertID]++
		}
		rejected += len(h.dl.entries)
		c := h.state.Counters
		if !h.state.Complete {
			t.Errorf("shard %d: state not complete", shard)
		}
		if c.EventsRead != c.EventsAccepted+c.EventsRejected {
			t.Errorf("shard %d: read %d != accepted %d + rejected %d", shard, c.EventsRead, c.EventsAccepted, c.EventsRejected)
		}
		if got, want := c.EventsRead+c.EventsForeign, int64(total+failed); got != want {
			t.Errorf("shard %d: read %d + other shards' %d = %d, want every record (%d)", shard, c.EventsRead, c.EventsForeign, got, want)
		}
		if c.EventsRead == 0 || c.EventsForeign == 0 {
			t.Errorf("shard %d: read %d, other %d: the split should give every shard a share", shard, c.EventsRead, c.EventsForeign)
		}
	}
	if len(sent) != total {
		t.Errorf("%d distinct events sent, want %d", len(sent), total)
	}
	for id, k := range sent {
		if k != 1 {
			t.Errorf("event %s sent %d times", id, k)
		}
	}
	if rejected != failed {
		t.Errorf("%d records dead-lettered over all shards, want %d", rejected, failed)
	}
}
