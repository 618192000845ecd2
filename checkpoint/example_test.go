package checkpoint_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
)

// Example shows a run that checkpoints, stops, and resumes exactly.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "ckpt")
	defer os.RemoveAll(dir)
	job := checkpoint.Fingerprint("file:///data/", "eps=300")
	obj := "file:///data/a.jsonl"
	p := func(r int64) backfill.Position {
		return backfill.Position{Object: obj, Record: r, Offset: r * 10, Line: r + 1}
	}

	store, _ := checkpoint.Open(ctx, dir, checkpoint.Options{})
	lock, err := store.Lock(ctx, checkpoint.LockOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := store.Load(ctx); errors.Is(err, checkpoint.ErrNoCheckpoint) {
		fmt.Println("fresh run")
	}
	tr := checkpoint.NewTracker(nil)
	tr.Begin(obj, "size=40")
	for r := range int64(4) {
		tr.Read(p(r))
	}
	// A request of records 0 and 2 is accepted: out of order, 1 is still
	// in flight.
	tr.SettleEvents([]backfill.Event{{Pos: p(0)}, {Pos: p(2)}}, []int{0, 1}, checkpoint.Accepted)
	st := checkpoint.State{Job: job}
	tr.Fill(&st, nil)
	store.Save(ctx, &st)
	lock.Release(ctx)
	// ... killed here: records 1 and 3 were in flight.

	loaded, _ := store.Load(ctx)
	if err := checkpoint.CheckJob(loaded, job, nil); err != nil {
		fmt.Println(err)
		return
	}
	tr = checkpoint.NewTracker(loaded)
	start := tr.Begin(obj, "size=40")
	fmt.Println("resume at record", start.Resume.Record, "offset", start.Resume.Offset)
	for r := start.Resume.Record; r < 4; r++ {
		if tr.Read(p(r)) {
			fmt.Println("skip", r)
			continue
		}
		fmt.Println("send", r)
		tr.SettleWith(p(r), checkpoint.Accepted, nil)
	}
	tr.EOF(obj, 4)
	tr.Fill(&st, nil)
	fmt.Println("done:", st.Complete, "accepted:", st.Counters.EventsAccepted)
	// Output:
	// fresh run
	// resume at record 1 offset 10
	// send 1
	// skip 2
	// send 3
	// done: true accepted: 4
}
