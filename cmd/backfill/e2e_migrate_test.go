package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backfillhq/backfill/deadletter"
	"github.com/backfillhq/backfill/emulator"
)

type goldenLine struct {
	Line   int             `json:"line"`
	Event  json.RawMessage `json:"event"`
	Code   string          `json:"code"`
	Reason string          `json:"reason"`
}

func readGolden(t *testing.T, path string) []goldenLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []goldenLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var g goldenLine
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, g)
	}
	return out
}

// canonical re-encodes an event with sorted keys, dropping an insert_id
// derived from the source position (it names the object's path).
func canonical(t *testing.T, raw []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("event %s: %v", raw, err)
	}
	if id, _ := m["insert_id"].(string); strings.HasPrefix(id, "bf-") {
		delete(m, "insert_id")
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// Every preset's vendor-format fixture migrates through the real command
// into the emulator: the events Amplitude receives are exactly the golden
// ones, rejections are dead-lettered with the golden reasons, and the report
// reconciles read = accepted + rejected for each migration and overall.
func TestE2EMigrations(t *testing.T) {
	presets, err := os.ReadDir(filepath.Join("..", "..", "fixtures", "presets"))
	if err != nil {
		t.Fatal(err)
	}
	var totalRead, totalAccepted, totalRejected, totalSkipped int64
	for _, p := range presets {
		preset := p.Name()
		t.Run(preset, func(t *testing.T) {
			base := filepath.Join("..", "..", "fixtures", "presets", preset)
			golden := readGolden(t, filepath.Join(base, "golden.jsonl"))
			input, err := os.ReadFile(filepath.Join(base, "input.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			w := newWorkDir(t)
			src := filepath.Join(w.dir, "export", preset+".jsonl")
			os.MkdirAll(filepath.Dir(src), 0o755)
			if err := os.WriteFile(src, input, 0o644); err != nil {
				t.Fatal(err)
			}
			e := startEmulator(t, emulator.Config{})
			r := runMain(t, append(w.runArgs(e, "--api-key", e2eKey, "--preset", preset), src)...)
			wantEvents, wantRejects, wantSkips := 0, 0, 0
			for _, g := range golden {
				switch {
				case g.Event != nil:
					wantEvents++
				case g.Code == "skipped":
					wantSkips++ // excluded at the source: settled, not dead-lettered
				default:
					wantRejects++
				}
			}
			wantCode := ExitOK
			if wantRejects > 0 {
				wantCode = ExitRejected
			}
			if r.code != wantCode {
				t.Fatalf("exit %d, want %d\n%s", r.code, wantCode, r)
			}
			rep := readReport(t, w.report)
			rep.checkInvariant(t)
			if rep.EventsRead != int64(len(golden)) || rep.EventsAccepted != int64(wantEvents) || rep.EventsRejected != int64(wantRejects) || rep.EventsSkipped != int64(wantSkips) {
				t.Fatalf("report read %d accepted %d rejected %d skipped %d, want %d %d %d %d", rep.EventsRead, rep.EventsAccepted, rep.EventsRejected, rep.EventsSkipped, len(golden), wantEvents, wantRejects, wantSkips)
			}
			got := map[string]int{}
			for _, rec := range e.Events() {
				got[canonical(t, rec.Event)]++
			}
			for _, g := range golden {
				if g.Event == nil {
					continue
				}
				k := canonical(t, g.Event)
				if got[k] != 1 {
					t.Errorf("golden event of line %d received %d times: %s", g.Line, got[k], k)
				}
				delete(got, k)
			}
			for k := range got {
				t.Errorf("unexpected event received: %s", k)
			}
			dl := readDeadLetter(t, w.deadLetter)
			byLine := map[int64]deadletter.Entry{}
			for _, d := range dl {
				byLine[d.Line] = d
			}
			for _, g := range golden {
				if g.Event != nil {
					continue
				}
				d, ok := byLine[int64(g.Line)]
				if g.Code == "skipped" {
					if ok {
						t.Errorf("line %d: skipped record dead-lettered: %s", g.Line, d.Reason)
					}
					continue
				}
				switch {
				case !ok:
					t.Errorf("line %d (%s) not dead-lettered", g.Line, g.Reason)
				case d.Stage == deadletter.StageDecode:
					// The reader refuses a record that is not a JSON object
					// before mapping sees it, in its own words.
					if d.Reason == "" {
						t.Errorf("line %d: dead-lettered without a reason", g.Line)
					}
				case d.Reason != g.Reason:
					t.Errorf("line %d: dead-letter reason %q, want %q", g.Line, d.Reason, g.Reason)
				}
			}
			totalRead += rep.EventsRead
			totalAccepted += rep.EventsAccepted
			totalRejected += rep.EventsRejected
			totalSkipped += rep.EventsSkipped
		})
	}
	if totalRead == 0 || totalRead != totalAccepted+totalRejected+totalSkipped {
		t.Fatalf("all migrations: read %d != accepted %d + rejected %d + skipped %d", totalRead, totalAccepted, totalRejected, totalSkipped)
	}
}

// Records dead-lettered for a mapping problem are sent after the mapping is
// fixed by running over the dead-letter file, with their original insert_ids.
func TestE2EDeadLetterRefeed(t *testing.T) {
	w := newWorkDir(t)
	src := filepath.Join(w.dir, "in", "events.jsonl")
	os.MkdirAll(filepath.Dir(src), 0o755)
	var b strings.Builder
	for i := 0; i < 20; i++ {
		if i%4 == 0 {
			// The source system called it "action".
			fmt.Fprintf(&b, `{"action":"Legacy Click","device_id":"device-%04d","time":%d}`+"\n", i, 1700000000000+i)
		} else {
			fmt.Fprintf(&b, `{"event_type":"Click","device_id":"device-%04d","time":%d}`+"\n", i, 1700000000000+i)
		}
	}
	if err := os.WriteFile(src, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	e := startEmulator(t, emulator.Config{})
	if r := runMain(t, append(w.runArgs(e, "--api-key", e2eKey), src)...); r.code != ExitRejected {
		t.Fatalf("first run: %s", r)
	}
	dl := readDeadLetter(t, w.deadLetter)
	if len(dl) != 5 {
		t.Fatalf("%d dead-letter entries, want 5", len(dl))
	}
	wantIDs := map[string]bool{}
	for _, d := range dl {
		if d.InsertID == "" {
			t.Fatalf("dead-letter entry without insert_id: %+v", d)
		}
		wantIDs[d.InsertID] = true
	}
	fix := filepath.Join(w.dir, "fix.yaml")
	os.WriteFile(fix, []byte("extends: amplitude\nfields:\n  event_type: [event_type, action]\n"), 0o644)
	w2 := newWorkDir(t)
	refeed := filepath.Join(w2.dir, "refeed", "dead-letter.jsonl")
	os.MkdirAll(filepath.Dir(refeed), 0o755)
	data, _ := os.ReadFile(w.deadLetter)
	os.WriteFile(refeed, data, 0o644)
	if r := runMain(t, append(w2.runArgs(e, "--api-key", e2eKey, "--mapping", fix), refeed)...); r.code != ExitOK {
		t.Fatalf("re-feed: %s", r)
	}
	got := 0
	for _, rec := range e.Events() {
		if wantIDs[rec.InsertID] {
			got++
			var m map[string]any
			json.Unmarshal(rec.Event, &m)
			if m["event_type"] != "Legacy Click" {
				t.Errorf("re-fed event %s", rec.Event)
			}
		}
	}
	if got != 5 {
		t.Fatalf("%d re-fed events arrived with their original insert_ids, want 5", got)
	}
	if s := e.Stats(); s.EventsAccepted != 20 {
		t.Fatalf("emulator accepted %d events in all, want 20", s.EventsAccepted)
	}
}

// An id over Amplitude's daily quota is parked: the run sends everything
// else, ends with exit code 4 and a checkpoint, and a run after the quota
// window (the emulator's clock moved a day on) sends exactly the rest.
func TestE2EDailyQuotaParking(t *testing.T) {
	var (
		mu  sync.Mutex
		now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := startEmulator(t, emulator.Config{DailyQuota: 300, Now: clock})
	w := newWorkDir(t)
	src := filepath.Join(w.dir, "in", "events.jsonl")
	os.MkdirAll(filepath.Dir(src), 0o755)
	var b strings.Builder
	for i := 0; i < 700; i++ {
		dev := "device-spammy-01"
		if i%7 >= 5 {
			dev = fmt.Sprintf("device-cold-%03d", i)
		}
		fmt.Fprintf(&b, `{"event_type":"Tick","device_id":"%s","time":%d,"insert_id":"q-%d"}`+"\n", dev, 1700000000000+i, i)
	}
	os.WriteFile(src, []byte(b.String()), 0o644)
	args := append(w.runArgs(e, "--api-key", e2eKey, "--batch-size", "100", "--lanes", "2"), src)

	r := runMain(t, args...)
	if r.code != ExitIncomplete {
		t.Fatalf("first run: exit %d, want %d (incomplete)\n%s", r.code, ExitIncomplete, r)
	}
	rep := readReport(t, w.report)
	if rep.Status != "incomplete" || rep.EventsPending == 0 || rep.EventsAccepted+rep.EventsRejected+rep.EventsPending != 700 {
		t.Fatalf("first report: status %s accepted %d rejected %d pending %d", rep.Status, rep.EventsAccepted, rep.EventsRejected, rep.EventsPending)
	}
	cold, hot := 0, 0
	for _, rec := range e.Events() {
		if rec.DeviceID == "device-spammy-01" {
			hot++
		} else {
			cold++
		}
	}
	// The quota refuses an id once it has reached 300: the request that
	// crosses it (at most --batch-size 100 events) is still accepted.
	if cold != 200 || hot < 300 || hot >= 300+100 {
		t.Fatalf("first run delivered %d cold (want all 200) and %d hot (want 300 to 399: quota 300, requests of 100)", cold, hot)
	}

	mu.Lock()
	now = now.Add(25 * time.Hour)
	mu.Unlock()
	r = runMain(t, args...)
	if r.code != ExitOK {
		t.Fatalf("second run: %s", r)
	}
	rep = readReport(t, w.report)
	rep.checkInvariant(t)
	if rep.EventsAccepted != 700 || rep.Runs != 2 {
		t.Fatalf("second report: accepted %d runs %d", rep.EventsAccepted, rep.Runs)
	}
	ids := map[string]int{}
	for _, rec := range e.Events() {
		ids[rec.InsertID]++
	}
	if len(ids) != 700 {
		t.Fatalf("%d distinct events delivered, want 700", len(ids))
	}
	if s := e.Stats(); s.EventsDuplicate != 0 {
		t.Fatalf("%d duplicates: parked events were sent twice", s.EventsDuplicate)
	}
}

// --daily-budget keeps an id under a self-imposed daily cap before
// Amplitude's quota answers 429: its extra events are parked for a later run
// (exit 4) while every other id is sent.
func TestE2EDailyBudget(t *testing.T) {
	e := startEmulator(t, emulator.Config{})
	w := newWorkDir(t)
	src := filepath.Join(w.dir, "in", "events.jsonl")
	os.MkdirAll(filepath.Dir(src), 0o755)
	var b strings.Builder
	for i := 0; i < 400; i++ {
		dev := "device-busy-0001"
		if i%4 == 0 {
			dev = fmt.Sprintf("device-cold-%03d", i)
		}
		fmt.Fprintf(&b, `{"event_type":"Tick","device_id":"%s","time":%d,"insert_id":"b-%d"}`+"\n", dev, 1700000000000+i, i)
	}
	os.WriteFile(src, []byte(b.String()), 0o644)
	r := runMain(t, append(w.runArgs(e, "--api-key", e2eKey, "--daily-budget", "120"), src)...)
	if r.code != ExitIncomplete {
		t.Fatalf("exit %d, want %d\n%s", r.code, ExitIncomplete, r)
	}
	busy, cold := 0, 0
	for _, rec := range e.Events() {
		if rec.DeviceID == "device-busy-0001" {
			busy++
		} else {
			cold++
		}
	}
	if cold != 100 || busy == 0 || busy > 120 {
		t.Fatalf("delivered %d busy (cap 120) and %d cold (want 100)", busy, cold)
	}
	if s := e.Stats(); s.Responses[429] != 0 {
		t.Fatalf("%d responses 429: the cap should avoid them", s.Responses[429])
	}
	rep := readReport(t, w.report)
	if rep.EventsPending != int64(300-busy) || rep.EventsAccepted != int64(busy+cold) {
		t.Fatalf("report accepted %d pending %d", rep.EventsAccepted, rep.EventsPending)
	}
}

// Two different Mixpanel events sharing an $insert_id (and so, passed
// through, an Amplitude insert_id) both arrive; with any preset, different
// events that do share an insert_id and a device are counted in the report
// and named in the log, since Amplitude keeps only the first.
func TestE2EDuplicateInsertIDs(t *testing.T) {
	w := newWorkDir(t)
	mp := filepath.Join(w.dir, "mixpanel", "export.jsonl")
	os.MkdirAll(filepath.Dir(mp), 0o755)
	os.WriteFile(mp, []byte(`{"event":"Order Placed","properties":{"time":1618716477,"distinct_id":"user-0001","$insert_id":"same-id"}}
{"event":"Payment Captured","properties":{"time":1618716477,"distinct_id":"user-0001","$insert_id":"same-id"}}
`), 0o644)
	e := startEmulator(t, emulator.Config{})
	r := runMain(t, append(w.runArgs(e, "--api-key", e2eKey, "--preset", "mixpanel"), mp)...)
	if r.code != ExitOK {
		t.Fatalf("mixpanel: %s", r)
	}
	if got := len(e.Events()); got != 2 {
		t.Fatalf("mixpanel: Amplitude kept %d of 2 distinct events", got)
	}
	if rep := readReport(t, w.report); rep.DuplicateInsertIDs != 0 {
		t.Fatalf("mixpanel: duplicate_insert_ids %d", rep.DuplicateInsertIDs)
	}

	w = newWorkDir(t)
	src := filepath.Join(w.dir, "amp", "events.jsonl")
	os.MkdirAll(filepath.Dir(src), 0o755)
	os.WriteFile(src, []byte(`{"event_type":"Order Placed","device_id":"device-0001","time":1700000000000,"insert_id":"order-7"}
{"event_type":"Payment Captured","device_id":"device-0001","time":1700000000000,"insert_id":"order-7"}
{"event_type":"Order Placed","device_id":"device-0001","time":1700000000000,"insert_id":"order-7"}
`), 0o644)
	e = startEmulator(t, emulator.Config{})
	r = runMain(t, append(w.runArgs(e, "--api-key", e2eKey), src)...)
	if r.code != ExitOK {
		t.Fatalf("amplitude: %s", r)
	}
	rep := readReport(t, w.report)
	rep.checkInvariant(t)
	if rep.DuplicateInsertIDs != 1 {
		t.Errorf("duplicate_insert_ids %d, want 1 (the identical third copy is no loss)", rep.DuplicateInsertIDs)
	}
	if !strings.Contains(r.stderr, "different events share an insert_id") || !strings.Contains(r.stderr, "order-7") {
		t.Errorf("no log of the duplicate:\n%s", r.stderr)
	}
	if !strings.Contains(r.stdout+r.stderr, "1 events share their id and insert_id") {
		t.Errorf("summary does not warn:\n%s", r)
	}
	if got := len(e.Events()); got != 1 {
		t.Errorf("the emulator kept %d events, want 1 (dedupe on insert_id)", got)
	}
}

// A Mixpanel People export given before the events reaches Amplitude first,
// as $identify events that update the user table (no
// $skip_user_properties_sync), whatever lanes their users hash to.
func TestE2EProfilesBeforeEvents(t *testing.T) {
	w := newWorkDir(t)
	people := filepath.Join(w.dir, "people", "engage.jsonl")
	events := filepath.Join(w.dir, "events", "export.jsonl")
	os.MkdirAll(filepath.Dir(people), 0o755)
	os.MkdirAll(filepath.Dir(events), 0o755)
	var p, ev strings.Builder
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&p, `{"$distinct_id":"user-%04d","$properties":{"$email":"u%d@example.com","$last_seen":"2024-03-01T10:00:00"}}`+"\n", i, i)
		fmt.Fprintf(&ev, `{"event":"Played Song","properties":{"time":%d,"distinct_id":"user-%04d","$device_id":"device-%04d","$insert_id":"ins-%d"}}`+"\n", 1709287200+i, i, i, i)
	}
	os.WriteFile(people, []byte(p.String()), 0o644)
	os.WriteFile(events, []byte(ev.String()), 0o644)
	e := startEmulator(t, emulator.Config{})
	r := runMain(t, append(w.runArgs(e, "--api-key", e2eKey, "--preset", "mixpanel", "--lanes", "8"), filepath.Dir(people), filepath.Dir(events))...)
	if r.code != ExitOK {
		t.Fatalf("%s", r)
	}
	got := e.Events()
	if len(got) != 60 {
		t.Fatalf("received %d events, want 60", len(got))
	}
	for i, rec := range got {
		var m map[string]any
		if err := json.Unmarshal(rec.Event, &m); err != nil {
			t.Fatal(err)
		}
		profile := m["event_type"] == "$identify"
		if profile != (i < 30) {
			t.Fatalf("event %d (%v) out of place: the 30 profiles must arrive first", i, m["event_type"])
		}
		if _, skip := m["$skip_user_properties_sync"]; skip == profile {
			t.Errorf("event %d: $skip_user_properties_sync present=%v for profile=%v", i, skip, profile)
		}
	}
}
