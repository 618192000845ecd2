package uploader_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/uploader"
)

// randomServer answers each request with a random documented outcome and
// remembers, by insert_id, what it told the client about each event.
type randomServer struct {
	mu      sync.Mutex
	rng     *rand.Rand
	fatal   bool              // allow fatal answers
	settled map[string]string // insert_id → "accepted", "rejected", "throttled", "parked"
	dup     []string          // ids sent again after being settled
}

func (s *randomServer) settle(id, how string) {
	if prev, ok := s.settled[id]; ok {
		s.dup = append(s.dup, id+" ("+prev+" then "+how+")")
	}
	s.settled[id] = how
}

func (s *randomServer) reply(req request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range req.IDs {
		if how, ok := s.settled[id]; ok {
			s.dup = append(s.dup, id+" resent after "+how)
		}
	}
	n := len(req.IDs)
	// pick returns a random non-empty subset of positions.
	pick := func() []int {
		var out []int
		for pos := range n {
			if s.rng.IntN(3) == 0 {
				out = append(out, pos)
			}
		}
		if len(out) == 0 {
			out = []int{s.rng.IntN(n)}
		}
		return out
	}
	num := func(i string) string { return strings.TrimPrefix(i, "id-") }
	switch p := s.rng.IntN(100); {
	case p < 40:
		for _, id := range req.IDs {
			s.settle(id, "accepted")
		}
		return r(200, body200)
	case p < 52:
		fields := []string{"events_with_invalid_fields", "events_with_missing_fields", "events_with_invalid_id_lengths"}
		body := map[string]any{"code": 400, "error": "Invalid field values on some events"}
		silenced := []int{}
		for _, pos := range pick() {
			s.settle(req.IDs[pos], "rejected")
			if s.rng.IntN(4) == 0 {
				silenced = append(silenced, pos)
				continue
			}
			f := fields[s.rng.IntN(len(fields))]
			m, _ := body[f].(map[string][]int)
			if m == nil {
				m = map[string][]int{}
				body[f] = m
			}
			m["time"] = append(m["time"], pos)
		}
		body["silenced_events"] = silenced
		b, err := json.Marshal(body)
		if err != nil {
			panic(err)
		}
		return r(400, string(b))
	case p < 60:
		if n == 1 {
			s.settle(req.IDs[0], "rejected") // payload too large
		}
		return r(413, body413)
	case p < 72:
		var events, devices, quota []string
		for _, pos := range pick() {
			id := req.IDs[pos]
			events = append(events, fmt.Sprint(pos))
			if s.rng.IntN(3) == 0 {
				s.settle(id, "parked")
				quota = append(quota, fmt.Sprintf(`"user-%s":500001`, num(id)))
			} else {
				s.settle(id, "throttled")
				devices = append(devices, fmt.Sprintf(`"dev-%s":40`, num(id)))
			}
		}
		return r(429, fmt.Sprintf(`{"code":429,"error":"Too many requests for some devices and users","eps_threshold":30,`+
			`"throttled_devices":{%s},"throttled_users":{},"throttled_events":[%s],`+
			`"exceeded_daily_quota_users":{%s},"exceeded_daily_quota_devices":{}}`,
			strings.Join(devices, ","), strings.Join(events, ","), strings.Join(quota, ",")))
	case p < 75:
		return r(429, body429Empty)
	case p < 85:
		return r([]int{408, 500, 502, 503, 504}[s.rng.IntN(5)], "")
	case p < 92:
		return reply{hangup: true}
	case p < 97:
		return reply{status: 200, body: body200[:5], truncate: true}
	default:
		if s.fatal {
			return r(403, body403)
		}
		return r(503, "<html>503</html>")
	}
}

// TestSendProperty drives Send against a server that answers at random and
// checks that the Result matches what the server said about each event, and
// that every event is settled exactly once when Send succeeds.
func TestSendProperty(t *testing.T) {
	srv := newServer(t)
	rs := &randomServer{}
	srv.fn = rs.reply
	c, _ := newClient(t, srv, nil, func(o *uploader.Options) { o.MaxAttempts = 3 })
	successes := 0
	const runs = 300
	for run := range runs {
		rs.mu.Lock()
		rs.rng = rand.New(rand.NewPCG(uint64(run), 42))
		rs.fatal = run%5 == 0
		rs.settled = make(map[string]string)
		rs.dup = nil
		n := 1 + rs.rng.IntN(40)
		rs.mu.Unlock()

		events := makeEvents(n)
		route := backfill.Route(run % 2)
		res, err := c.Send(context.Background(), route, events)
		if err != nil && !errors.Is(err, uploader.ErrFatal) && !errors.Is(err, uploader.ErrRetriesExhausted) {
			t.Fatalf("run %d: unexpected error %v", run, err)
		}
		if err == nil {
			successes++
		}
		checkPartition(t, res, n, err == nil)

		got := make(map[string]string)
		for _, i := range res.Accepted {
			got[events[i].InsertID] = "accepted"
		}
		for _, rj := range res.Rejected {
			got[events[rj.Index].InsertID] = "rejected"
			if rj.Reason == "" || (rj.Status != 400 && rj.Status != 413) {
				t.Errorf("run %d: rejection %+v lacks a reason or status", run, rj)
			}
		}
		for _, i := range res.Throttled {
			got[events[i].InsertID] = "throttled"
		}
		for _, i := range res.Parked {
			got[events[i].InsertID] = "parked"
		}
		rs.mu.Lock()
		want := rs.settled
		dup := rs.dup
		rs.mu.Unlock()
		if g, w := fmtSettled(got), fmtSettled(want); g != w {
			t.Errorf("run %d (n=%d, err=%v):\nclient %s\nserver %s", run, n, err, g, w)
		}
		if len(dup) > 0 {
			t.Errorf("run %d: settled events sent again: %v", run, dup)
		}
		if len(res.Throttled) > 0 && res.PauseFor != uploader.DefaultThrottlePause {
			t.Errorf("run %d: PauseFor = %v with throttled events", run, res.PauseFor)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d of %d runs succeeded", successes, runs)
	if successes < runs/3 {
		t.Errorf("only %d of %d runs succeeded; the property barely ran", successes, runs)
	}
}

func fmtSettled(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k+"="+m[k])
	}
	sort.Strings(keys)
	return strings.Join(keys, " ")
}
