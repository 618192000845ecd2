package pipeline_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/pipeline"
)

// fakeJournal checks the lanes' protocol: a lane's request is recorded
// (Sent), made durable (Wait) and settled (Acked) before its next one.
type fakeJournal struct {
	t       *testing.T
	mu      sync.Mutex
	pending map[int]int // lane -> events sent, not acked
	sent    int
	acked   int
	waits   int
	recent  func([]checkpoint.IDSends) []checkpoint.IDSends
}

func (j *fakeJournal) Sent(lane int, evs []backfill.Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.pending[lane]; ok {
		j.t.Errorf("lane %d sent a request before its previous one was acked", lane)
	}
	j.pending[lane] = len(evs)
	j.sent += len(evs)
}

func (j *fakeJournal) Wait(context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.waits++
	return nil
}

func (j *fakeJournal) Acked(lane int, accepted []int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	n, ok := j.pending[lane]
	if !ok {
		j.t.Errorf("lane %d acked without a request", lane)
	}
	if len(accepted) > n {
		j.t.Errorf("lane %d acked %d of %d events", lane, len(accepted), n)
	}
	delete(j.pending, lane)
	j.acked += len(accepted)
}

func (j *fakeJournal) SetRecent(f func([]checkpoint.IDSends) []checkpoint.IDSends) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.recent = f
}

// TestResumeWithinWindow resumes a run whose predecessor had spent a hot
// device's whole window on one route: on that route the resumed run sends
// none of the device's events within the window (other devices flow), on
// the other route the device is not held back. The journal sees every
// request recorded, waited for and acknowledged, and the budgets' recent
// sends list the hot device.
func TestResumeWithinWindow(t *testing.T) {
	for _, tt := range []struct {
		route      backfill.Route
		spentOn    string
		wantHotOut bool
	}{
		{backfill.RouteBatch, "batch", false},
		{backfill.RouteHTTP, "http", false},
		{backfill.RouteBatch, "http", true},
		{backfill.RouteHTTP, "batch", true},
	} {
		t.Run(tt.route.String()+"-spent-on-"+tt.spentOn, func(t *testing.T) {
			now := time.Now()
			objs := []source{{url: "mem://a", route: tt.route, recs: mix(records("hot-device", 20), records("cold-device", 20))}}
			snd := &sender{}
			jr := &fakeJournal{t: t, pending: map[int]int{}}
			soft, stop := context.WithCancel(context.Background())
			defer stop()
			tr := checkpoint.NewTracker(nil)
			deps := pipeline.Deps{
				Objects: &lister{objs: objs}, Mapper: mapper{}, Sender: snd, Tracker: tr, DeadLetter: &memDL{},
				Save:    func(context.Context) error { return nil },
				Journal: jr,
				Resume: pipeline.Resume{
					Recent: []checkpoint.IDSends{{Route: tt.spentOn, Kind: "device", ID: "hot-device", Sends: [][2]int64{{now.Unix() - 1, 300}}}},
					Active: now,
				},
			}
			cfg := pipeline.Config{EPS: 10, HTTPEPS: 10, Linger: time.Millisecond, SpillDir: t.TempDir(), Lanes: 2}
			count := func() (hot, cold int) {
				snd.mu.Lock()
				defer snd.mu.Unlock()
				for _, e := range snd.got {
					if strings.HasPrefix(e.DeviceID, "hot") {
						hot++
					} else {
						cold++
					}
				}
				return
			}
			done := make(chan error, 1)
			go func() {
				_, err := pipeline.Run(context.Background(), soft, cfg, deps, nil)
				done <- err
			}()
			deadline := time.Now().Add(20 * time.Second)
			for {
				hot, cold := count()
				if cold == 20 && (!tt.wantHotOut || hot == 20) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after 20s: %d hot and %d cold events sent", hot, cold)
				}
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond) // the hot device's events would go now if they could
			jr.mu.Lock()
			recent := jr.recent
			jr.mu.Unlock()
			if recent == nil {
				t.Fatal("the pipeline gave the journal no recent sends")
			}
			var listed bool
			for _, s := range recent(nil) {
				if s.ID == "hot-device" && s.Route == tt.spentOn && s.Kind == "device" {
					listed = true
				}
			}
			if !listed {
				t.Errorf("recent sends %+v do not list the seeded hot device on %s", recent(nil), tt.spentOn)
			}
			stop()
			<-done // interrupted, or done
			hot, _ := count()
			if tt.wantHotOut && hot != 20 {
				t.Errorf("%d hot events sent on %s, want 20: its window was spent on the other route", hot, tt.route)
			}
			if !tt.wantHotOut && hot != 0 {
				t.Errorf("%d hot events sent on %s within the window the killed run had spent", hot, tt.route)
			}
			jr.mu.Lock()
			defer jr.mu.Unlock()
			if jr.sent == 0 || jr.waits < 1 || jr.acked != len(snd.got) {
				t.Errorf("journal: %d sent, %d waits, %d acked; the sender accepted %d", jr.sent, jr.waits, jr.acked, len(snd.got))
			}
		})
	}
}
