package chunker

import (
	"fmt"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
)

// With every key hash forced equal, queues still keep their own events, in
// order, across pushes, requeues, sends and removals (chained collisions),
// and a device id and a device-less user id that are the same string stay
// apart.
func TestLaneQueueKeyCollisions(t *testing.T) {
	for _, mask := range []uint64{0, 1} {
		t.Run(fmt.Sprint(mask), func(t *testing.T) {
			defer func(m uint64) { queueKeyMask = m }(queueKeyMask)
			queueKeyMask = mask
			l := NewLane(NewBudget(0, 0), Options{MaxEvents: 7})
			now := time.Unix(1_700_000_000, 0)
			keys := []struct{ dev, user string }{{"d1", "u1"}, {"d2", "u1"}, {"", "d1"}, {"", "u2"}, {"d3", ""}}
			next := map[string]int64{}
			pushed := 0
			for round := range 20 {
				for i := range 3 + round%4 {
					k := keys[(round+i)%len(keys)]
					ev := backfill.Event{DeviceID: k.dev, UserID: k.user, Raw: []byte("{}"), Pos: backfill.Position{Object: Key(&backfill.Event{DeviceID: k.dev, UserID: k.user}), Record: int64(pushed)}}
					pushed++
					if !l.Push(ev, now) {
						t.Fatal("push refused")
					}
				}
				now = now.Add(time.Second)
				b := l.Next(now)
				if round%3 == 0 {
					// Throttled: all of it goes back to the front.
					l.Requeue(b.Events, now)
					continue
				}
				for _, ev := range b.Events {
					if k := Key(&ev); k != ev.Pos.Object {
						t.Fatalf("event of %q came out of queue %q", ev.Pos.Object, k)
					}
					if ev.Pos.Record < next[ev.Pos.Object] {
						t.Fatalf("%q: record %d after %d", ev.Pos.Object, ev.Pos.Record, next[ev.Pos.Object])
					}
					next[ev.Pos.Object] = ev.Pos.Record + 1
				}
				l.mu.Lock()
				n := 0
				for _, q := range l.queues {
					for ; q != nil; q = q.next {
						n++
						if q.len() == 0 && q.sp == nil {
							t.Fatalf("empty queue %q left in the map", q.dev+"/"+q.user)
						}
					}
				}
				if n != len(l.active) {
					t.Fatalf("%d queues in the map, %d active", n, len(l.active))
				}
				l.mu.Unlock()
			}
			_, _ = drainAll(t, l, now)
			if l.Len() != 0 {
				t.Fatalf("%d events left", l.Len())
			}
			if len(l.queues) != 0 {
				t.Fatalf("%d map entries left", len(l.queues))
			}
		})
	}
}

func drainAll(t *testing.T, l *Lane, now time.Time) (int, time.Time) {
	n := 0
	for range 1000 {
		b := l.Next(now)
		n += len(b.Events)
		if b.Queued == 0 {
			return n, now
		}
		now = now.Add(max(b.Wait, time.Second))
	}
	t.Fatal("lane did not drain")
	return n, now
}
