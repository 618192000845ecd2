package backfill_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/backfillhq/backfill"
)

func TestOutcomeOf(t *testing.T) {
	parked := backfill.OutcomeError(backfill.Incomplete, "parked")
	tests := []struct {
		err  error
		want backfill.Outcome
	}{
		{nil, backfill.Complete},
		{backfill.ErrInterrupted, backfill.Interrupted},
		{fmt.Errorf("run: %w", backfill.ErrInterrupted), backfill.Interrupted},
		{fmt.Errorf("%w: 3 events left", parked), backfill.Incomplete},
		{errors.Join(errors.New("save checkpoint"), parked), backfill.Incomplete},
		{errors.New("boom"), backfill.Failed},
	}
	for _, tt := range tests {
		if got := backfill.OutcomeOf(tt.err); got != tt.want {
			t.Errorf("OutcomeOf(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	if !errors.Is(fmt.Errorf("x: %w", parked), parked) || errors.Is(parked, backfill.ErrInterrupted) {
		t.Error("outcome errors are distinct sentinels")
	}
}
