package backfill

import (
	"context"
	"time"
)

// Sleep waits for d or until ctx is done, and returns ctx.Err() (nil when d
// passed first; at once when d <= 0). It is the default of every stage's
// injectable sleep (uploader backoff, project ceilings, emulator latency),
// so tests replace one function and production code waits one way.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
