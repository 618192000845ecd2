package pipeline

import (
	"context"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/chunker"
	"github.com/backfillhq/backfill/uploader"
)

// throttle is the one place where Amplitude's 429s turn into holds on ids.
// It wraps the Sender of one route (restic style: a concern around the
// same interface). The uploader classifies each response (which events
// were throttled and which ids a 429 named, which are over the daily quota)
// and splits a request on 413; throttle pauses the named ids for PauseFor
// and parks the ids over their quota for ParkFor in the route's budget, so
// the chunker holds their events back. The lane then only requeues the
// events that came back throttled or parked.
type throttle struct {
	Sender
	budget  *chunker.Budget
	now     func() time.Time
	parkFor time.Duration
	stats   *Stats
}

var _ Sender = throttle{}

func (t throttle) Send(ctx context.Context, route backfill.Route, evs []backfill.Event) (uploader.Result, error) {
	res, err := t.Sender.Send(ctx, route, evs)
	now := t.now()
	if len(res.Throttled) > 0 {
		for _, id := range res.PauseDevices {
			t.budget.Pause(chunker.Device, id, now.Add(res.PauseFor))
		}
		for _, id := range res.PauseUsers {
			t.budget.Pause(chunker.User, id, now.Add(res.PauseFor))
		}
		t.stats.Throttled.Add(int64(len(res.PauseDevices) + len(res.PauseUsers)))
	}
	if len(res.Parked) > 0 {
		until := now.Add(t.parkFor)
		for _, id := range res.QuotaDevices {
			t.budget.Park(chunker.Device, id, until)
			t.stats.park(checkpoint.ParkedID{Kind: "device", ID: id, Until: until})
		}
		for _, id := range res.QuotaUsers {
			t.budget.Park(chunker.User, id, until)
			t.stats.park(checkpoint.ParkedID{Kind: "user", ID: id, Until: until})
		}
	}
	return res, err
}
