package pipeline_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/uploader"
)

// timeoutSender is a server that never answers: every request ends with
// retries exhausted after client timeouts, whose cause unwraps to
// context.DeadlineExceeded (as net/http's timeout errors do).
type timeoutSender struct{}

func (timeoutSender) Send(ctx context.Context, route backfill.Route, evs []backfill.Event) (uploader.Result, error) {
	cause := &url.Error{Op: "Post", URL: "http://127.0.0.1:1/batch", Err: context.DeadlineExceeded}
	return uploader.Result{Stats: uploader.Stats{Requests: 3, Retries: 2, Responses: map[int]int{0: 3}}},
		&uploader.StatusError{Err: uploader.ErrRetriesExhausted, Message: cause.Error(), Cause: cause}
}

// TestRunRetriesExhaustedIsNotParked: a server that never answers ends the
// run with retries exhausted, not as if events were parked for the daily
// quota (the timeout in the error's cause was taken for the run's own
// cancellation, so the lane stopped quietly and its events looked parked).
func TestRunRetriesExhaustedIsNotParked(t *testing.T) {
	objs := []source{{url: "mem://a", recs: records("device-1", 50)}}
	ctx := context.Background()
	tr := checkpoint.NewTracker(nil)
	_, err := pipeline.Run(ctx, ctx, pipeline.Config{Linger: time.Millisecond, SpillDir: t.TempDir()}, pipeline.Deps{
		Objects: &lister{objs: objs}, Mapper: mapper{}, Sender: timeoutSender{}, Tracker: tr, DeadLetter: &memDL{},
		Save: func(context.Context) error { return nil },
	}, nil)
	if !errors.Is(err, uploader.ErrRetriesExhausted) || errors.Is(err, pipeline.ErrParked) {
		t.Fatalf("err = %v, want retries exhausted and not parked", err)
	}
}
