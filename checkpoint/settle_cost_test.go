package checkpoint

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/backfillhq/backfill"
)

// settleShape drives a tracker as the pipeline does on one input layout:
// records read object after object (or interleaved), held in a window of
// in-flight records, settled in requests that mix objects, and returns the
// tracker's elementary steps per record settled.
type settleShape struct {
	name    string
	objects int    // objects read
	perObj  int    // records per object
	open    int    // objects read at once (interleaved), 1: one after the other
	window  int    // records in flight
	batch   int    // records per request
	order   string // "lanes", "random", "reverse"
	strag   bool   // the first record of every object settles last
}

func (sh settleShape) run(t *testing.T) (opsPerRecord float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(sh.objects), uint64(sh.window)))
	tr := NewTracker(nil)
	urls := make([]string, sh.objects)
	for i := range urls {
		urls[i] = fmt.Sprintf("s3://bucket/export/part-%05d.jsonl.gz", i)
		tr.Begin(urls[i], "")
	}
	next := make([]int64, sh.objects)
	var (
		inflight, held []backfill.Event
		settled        int
		idx            []int
		reading        []int // objects being read
		nextObj        int
	)
	settle := func(evs []backfill.Event) {
		idx = idx[:0]
		for i := range evs {
			idx = append(idx, i)
		}
		settled += tr.SettleEvents(evs, idx, Accepted)
	}
	flush := func(all bool) {
		switch sh.order {
		case "random":
			rng.Shuffle(len(inflight), func(i, j int) { inflight[i], inflight[j] = inflight[j], inflight[i] })
		case "reverse":
			slices.Reverse(inflight)
		case "lanes":
			// Requests of 16 device lanes: each an interleaved subsequence.
			slices.SortStableFunc(inflight, func(a, b backfill.Event) int {
				return int(lane(a.Pos)) - int(lane(b.Pos))
			})
		}
		keep := 0
		if !all {
			keep = sh.window / 2 // half the window stays in flight
		}
		for len(inflight) > keep {
			n := min(sh.batch, len(inflight)-keep)
			settle(inflight[:n])
			inflight = inflight[n:]
		}
		inflight = slices.Clone(inflight)
	}
	for {
		for len(reading) < sh.open && nextObj < sh.objects {
			reading = append(reading, nextObj)
			nextObj++
		}
		if len(reading) == 0 {
			break
		}
		k := rng.IntN(len(reading))
		o := reading[k]
		for range 1 + rng.IntN(20) {
			if next[o] == int64(sh.perObj) {
				tr.EOF(urls[o], next[o])
				reading = slices.Delete(reading, k, k+1)
				break
			}
			p := backfill.Position{Object: urls[o], Record: next[o], Offset: next[o] * 200, Line: next[o] + 1}
			next[o]++
			if tr.Read(p) {
				t.Fatalf("%s: fresh record %d of object %d skipped", sh.name, p.Record, o)
			}
			if sh.strag && p.Record == 0 {
				held = append(held, backfill.Event{Pos: p})
			} else {
				inflight = append(inflight, backfill.Event{Pos: p})
			}
		}
		if len(inflight) >= sh.window {
			flush(false)
		}
	}
	flush(true)
	settle(held)
	total := sh.objects * sh.perObj
	if settled != total {
		t.Fatalf("%s: settled %d of %d", sh.name, settled, total)
	}
	var ops int64
	for _, u := range urls {
		o := tr.objs[u]
		if !o.obj.Done {
			t.Fatalf("%s: %s not done: %+v", sh.name, u, o.obj)
		}
		ops += o.settled.ops + o.inflight.ops
	}
	return float64(ops) / float64(total)
}

func lane(p backfill.Position) uint64 {
	return uint64(p.Record*2654435761+int64(len(p.Object))*7919) % 16
}

// TestSettleCostPerRecord bounds the work of settling: the tracker's
// elementary steps per record settled (ranges and records visited by the
// settled set, entries and probes of the records in flight) must not grow
// when the objects, the records per object, the objects open at once or
// the window of records in flight grow fourfold. A merge of an object's
// whole range set per request, or an insertion that shifts it, makes the
// steps per record grow with the window and fails this.
func TestSettleCostPerRecord(t *testing.T) {
	shapes := []settleShape{
		{name: "one object, lanes", objects: 1, perObj: 10000, open: 1, window: 2000, batch: 250, order: "lanes"},
		{name: "one object, random", objects: 1, perObj: 10000, open: 1, window: 2000, batch: 250, order: "random"},
		{name: "one object, reverse", objects: 1, perObj: 10000, open: 1, window: 2000, batch: 250, order: "reverse"},
		{name: "many objects open, lanes", objects: 100, perObj: 100, open: 100, window: 2000, batch: 250, order: "lanes"},
		{name: "many objects open, random", objects: 100, perObj: 100, open: 100, window: 2000, batch: 250, order: "random"},
		{name: "objects in turn, stragglers", objects: 50, perObj: 200, open: 4, window: 2000, batch: 250, order: "random", strag: true},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			small := sh.run(t)
			// Four times the records and the window; for several objects,
			// also four times the objects (and those open at once).
			bigs := []settleShape{sh}
			bigs[0].perObj *= 4
			bigs[0].window *= 4
			if sh.objects > 1 {
				more := sh
				more.objects *= 4
				more.open = min(more.objects, 4*sh.open)
				bigs = append(bigs, more)
			}
			for _, big := range bigs {
				large := big.run(t)
				t.Logf("steps per record: %.2f; %.2f with %d objects of %d records, %d open, window %d",
					small, large, big.objects, big.perObj, big.open, big.window)
				if large > 1.5*small+1 || large > 30 {
					t.Errorf("steps per record grew from %.2f to %.2f with %d objects of %d records, %d open, window %d",
						small, large, big.objects, big.perObj, big.open, big.window)
				}
			}
		})
	}
}

// TestSettledSetMatchesRanges checks settledSet against a sorted range
// list under random adds, watermark moves and reads of the ranges.
func TestSettledSetMatchesRanges(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 3))
		var ref [][2]int64
		var w int64
		if seed%2 == 1 { // a loaded state's ranges
			for x := int64(5); x < 2000; x += 2 + rng.Int64N(30) {
				ref = append(ref, [2]int64{x, x + 1 + rng.Int64N(5)})
				x = ref[len(ref)-1][1]
			}
		}
		s := newSettledSet(ref)
		span := int64(500 + rng.IntN(5000))
		for step := range 20000 {
			x := w + rng.Int64N(span)
			if got, want := s.contains(x), inRanges(ref, x); got != want {
				t.Fatalf("seed %d step %d: contains(%d)=%v want %v", seed, step, x, got, want)
			}
			if inRanges(ref, x) {
				continue
			}
			if x != w {
				s.add(x)
				ref = addRange(ref, x)
			} else {
				nw := x + 1
				if len(ref) > 0 && ref[0][0] == nw {
					nw = ref[0][1]
					ref = ref[1:]
				}
				if got := s.advance(x + 1); got != nw {
					t.Fatalf("seed %d step %d: advance(%d)=%d want %d", seed, step, x+1, got, nw)
				}
				w = nw
			}
			if rng.IntN(500) == 0 {
				if got := s.ranges(); !slices.Equal(got, ref) {
					t.Fatalf("seed %d step %d: ranges %v want %v", seed, step, got, ref)
				}
			}
			if s.empty() != (len(ref) == 0) {
				t.Fatalf("seed %d step %d: empty=%v with %d ranges", seed, step, s.empty(), len(ref))
			}
		}
	}
}
