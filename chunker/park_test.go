package chunker_test

import (
	"testing"
	"time"

	"github.com/backfillhq/backfill/chunker"
)

// TestBatchParked checks the named protocol between chunker and pipeline: a
// batch says Parked only when every event that could go next waits for an
// id parked over its daily quota (Park or the daily budget), never for a
// 429 pause or pacing, whatever their lengths.
func TestBatchParked(t *testing.T) {
	tests := []struct {
		name  string
		hold  func(b *chunker.Budget) // applied to the pace budget
		daily int
		want  bool
	}{
		{"paused after a 429", func(b *chunker.Budget) { b.Pause(chunker.Device, "a", t0.Add(30*time.Second)) }, 0, false},
		{"long 429 pause", func(b *chunker.Budget) { b.Pause(chunker.Device, "a", t0.Add(2*time.Hour)) }, 0, false},
		{"parked", func(b *chunker.Budget) { b.Park(chunker.Device, "a", t0.Add(time.Hour)) }, 0, true},
		{"short park", func(b *chunker.Budget) { b.Park(chunker.User, "u", t0.Add(10*time.Second)) }, 0, true},
		{"park outlasts pause", func(b *chunker.Budget) {
			b.Pause(chunker.Device, "a", t0.Add(30*time.Second))
			b.Park(chunker.User, "u", t0.Add(time.Hour))
		}, 0, true},
		{"daily budget spent", func(*chunker.Budget) {}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := chunker.NewBudget(0, 0)
			opts := chunker.Options{}
			if tt.daily > 0 {
				opts.Daily = chunker.NewDailyBudget(tt.daily)
			}
			l := chunker.NewLane(b, opts)
			for i := range 3 {
				l.Push(ev("a", "u", int64(i), 10), t0)
			}
			l.Close()
			if tt.daily > 0 {
				if got := l.Next(t0); len(got.Events) != tt.daily {
					t.Fatalf("first batch %d events, want %d", len(got.Events), tt.daily)
				}
			}
			tt.hold(b)
			got := l.Next(t0.Add(time.Second))
			if len(got.Events) != 0 || got.Queued == 0 {
				t.Fatalf("held lane sent %d events, %d queued", len(got.Events), got.Queued)
			}
			if got.Parked != tt.want {
				t.Errorf("Parked = %v, want %v (wait %v)", got.Parked, tt.want, got.Wait)
			}
		})
	}
}
