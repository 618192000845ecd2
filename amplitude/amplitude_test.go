package amplitude_test

import (
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/amplitude"
)

func TestDerived(t *testing.T) {
	if amplitude.DefaultHTTPEPS != 24 {
		t.Errorf("DefaultHTTPEPS = %d, want 24 (80%% of 30)", amplitude.DefaultHTTPEPS)
	}
	if got := amplitude.PackBytes(backfill.RouteBatch); got != 19_000_000 {
		t.Errorf("PackBytes(batch) = %d", got)
	}
	if got := amplitude.PackBytes(backfill.RouteHTTP); got != 950_000 {
		t.Errorf("PackBytes(http) = %d", got)
	}
	for _, tt := range []struct{ rate, def, n, want int }{
		{0, 300, 1, 300}, {0, 300, 4, 75}, {1000, 300, 3, 333}, {2, 300, 4, 1}, {-1, 300, 4, -1}, {24, 24, 0, 24},
	} {
		if got := amplitude.ShardRate(tt.rate, tt.def, tt.n); got != tt.want {
			t.Errorf("ShardRate(%d, %d, %d) = %d, want %d", tt.rate, tt.def, tt.n, got, tt.want)
		}
	}
}

// Moved from uploader (MaxBytes now lives here).
func TestMaxBytes(t *testing.T) {
	if got := amplitude.MaxBytes(backfill.RouteHTTP); got != amplitude.MaxHTTPBytes {
		t.Errorf("MaxBytes(RouteHTTP) = %d", got)
	}
	if got := amplitude.MaxBytes(backfill.RouteBatch); got != amplitude.MaxBatchBytes {
		t.Errorf("MaxBytes(RouteBatch) = %d", got)
	}
}
