package mapping_test

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/mapping"
)

func TestSummary(t *testing.T) {
	m := newMapper(t, mapping.Options{Preset: "mixpanel"})
	s := &mapping.Summary{MaxSamples: 1, MaxExamples: 2}
	inputs := []string{
		`{"event":"A","properties":{"time":1618716477,"distinct_id":"user-0001"}}`,
		`{"event":"B","properties":{"time":1618716480,"distinct_id":"user-0002","$device_id":"dev-00001"}}`,
		`{"event":"C","properties":{"time":1618716470,"distinct_id":"user-0001"}}`,
		`{"event":"$merge","properties":{"time":1618716477,"distinct_id":"user-0001"}}`,
		`{"event":"D","properties":{"time":1618716477}}`,
		`{"event":"E","properties":{"distinct_id":"user-0001"}}`,
	}
	for i, in := range inputs {
		ev, err := m.Map(rec(i, in))
		s.Add(ev, err)
	}
	total, mapped, filtered, rejected := s.Counts()
	if total != 6 || mapped != 3 || filtered != 1 || rejected != 2 {
		t.Fatalf("counts %d %d %d %d", total, mapped, filtered, rejected)
	}
	if r := s.Reasons(); r["filtered"] != 1 || r["missing_id"] != 1 || r["missing_time"] != 1 {
		t.Fatalf("reasons %v", r)
	}
	if lo, hi := s.TimeRange(); lo != 1618716470000 || hi != 1618716480000 {
		t.Fatalf("time range %d..%d", lo, hi)
	}
	if n, exact := s.Users(); n != 2 || !exact {
		t.Fatalf("users %d %v", n, exact)
	}
	if n, _ := s.Devices(); n != 1 {
		t.Fatalf("devices %d", n)
	}
	smp := s.Samples()
	if len(smp) != 1 || smp[0].Pos.Line != 5 || smp[0].Code != "missing_id" {
		t.Fatalf("samples %+v", smp)
	}
	var b strings.Builder
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"records:   6\n", "valid:     3\n", "filtered:  1\n", "rejected:  2\n",
		"  missing_id             1\n",
		"time range: 2021-04-18T03:27:50.000Z .. 2021-04-18T03:28:00.000Z\n",
		"distinct users:   2\n", "distinct devices: 1\n",
		"s3://bucket/events/part-1.jsonl line 5: [missing_id] missing user_id and device_id\n",
		`{"event":"D","properties":{"time":1618716477}}`,
		"first mapped events:\n  {\"user_id\":\"user-0001\"",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, `"event_type"`) != 2 {
		t.Errorf("want 2 examples:\n%s", out)
	}
}

func TestSummaryDistinctEstimate(t *testing.T) {
	s := &mapping.Summary{DistinctCap: 1000}
	const n = 50000
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < n; i += 2 {
				s.Add(backfill.Event{UserID: fmt.Sprintf("user-%d", i), DeviceID: "dev-1", Time: 1}, nil)
			}
		}(g)
	}
	wg.Wait()
	got, exact := s.Users()
	if exact {
		t.Fatal("count above the cap claims to be exact")
	}
	if rel := math.Abs(float64(got)-n) / n; rel > 0.03 {
		t.Fatalf("estimate %d for %d distinct ids (%.1f%% off)", got, n, rel*100)
	}
	if d, exact := s.Devices(); d != 1 || !exact {
		t.Fatalf("devices %d %v", d, exact)
	}
	var b strings.Builder
	_ = s.WriteText(&b)
	if !strings.Contains(b.String(), "distinct users:   ~") {
		t.Fatalf("estimate not marked:\n%s", b.String())
	}
}

// A record the reader could not decode counts as "decode"; a syntax error
// the mapper finds in an unchecked record as "invalid_json".
func TestSummaryDecodeErrors(t *testing.T) {
	m := newMapper(t, mapping.Options{})
	s := &mapping.Summary{}
	pos := backfill.Position{Object: "file:///a.jsonl", Record: 1, Line: 2}
	s.Add(backfill.Event{}, &backfill.RecordError{Pos: pos, Reason: "invalid UTF-8"})
	r := backfill.Record{Pos: pos, Data: []byte(`{"event_type":`), Unchecked: true}
	_, err := m.Map(r)
	s.Add(backfill.Event{}, err)
	if got := s.Reasons(); got[mapping.CodeDecode] != 1 || got[mapping.CodeInvalidJSON] != 1 || len(got) != 2 {
		t.Fatalf("reasons %v", got)
	}
}
