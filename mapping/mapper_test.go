package mapping_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/mapping"
	"github.com/backfillhq/backfill/validate"
)

func rec(i int, data string) backfill.Record {
	return backfill.Record{Pos: backfill.Position{Object: "s3://bucket/events/part-1.jsonl", Record: int64(i), Line: int64(i + 1)}, Data: []byte(data)}
}

func newMapper(t testing.TB, opt mapping.Options) *mapping.Mapper {
	t.Helper()
	if opt.Now == nil {
		opt.Now = fixedNow
	}
	m, err := mapping.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func specMapper(t testing.TB, yaml string, opt mapping.Options) *mapping.Mapper {
	t.Helper()
	s, err := mapping.ParseSpec([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	opt.Spec = s
	return newMapper(t, opt)
}

func TestFastPathCopiesBytes(t *testing.T) {
	m := newMapper(t, mapping.Options{SkipUserPropertiesSync: true})
	in := `{"user_id":"user-0001","event_type":"e","time":1700000000000,"insert_id":"x-1","event_properties":{"k":"caf\u00e9"}}`
	ev, err := m.Map(rec(0, in+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSuffix(in, "}") + `,"$skip_user_properties_sync":true}`
	if got := string(ev.Raw); got != want {
		t.Fatalf("Raw=%s\nwant %s", got, want)
	}
	if s := m.Stats(); s.FastPath != 1 || s.Mapped != 1 || s.Derived != 0 {
		t.Fatalf("stats %+v", s)
	}
	// The fast path must not alias the record buffer.
	data := []byte(in)
	ev, _ = m.Map(backfill.Record{Data: data})
	data[2] = 'X'
	if bytes.Contains(ev.Raw, []byte("X")) {
		t.Fatal("Raw aliases the record bytes")
	}
}

func TestSkipUserPropertiesSyncOff(t *testing.T) {
	m := newMapper(t, mapping.Options{})
	for i, in := range []string{
		`{"user_id":"user-0001","event_type":"e","time":1700000000000,"insert_id":"x"}`,
		`{"user_id":"user-0001","event_type":"e","time":"1700000000000","insert_id":"x"}`,
	} {
		ev, err := m.Map(rec(i, in))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(ev.Raw, []byte("skip_user")) {
			t.Errorf("%d: unexpected flag: %s", i, ev.Raw)
		}
	}
}

func TestDeriveInsertID(t *testing.T) {
	pos := backfill.Position{Object: "s3://b/k.jsonl", Record: 17, Offset: 99, Line: 18}
	got := mapping.DeriveInsertID(pos)
	sum := sha256.Sum256([]byte("s3://b/k.jsonl#17"))
	if want := "bf-" + hex.EncodeToString(sum[:])[:32]; got != want {
		t.Fatalf("DeriveInsertID=%q, want %q", got, want)
	}
	// Only Object and Record matter.
	if other := mapping.DeriveInsertID(backfill.Position{Object: pos.Object, Record: 17}); other != got {
		t.Fatalf("offset/line changed the id: %s vs %s", other, got)
	}
	if other := mapping.DeriveInsertID(backfill.Position{Object: pos.Object, Record: 18}); other == got {
		t.Fatal("different records share an id")
	}
	// Same record, fast and generic paths: the same derived id.
	m := newMapper(t, mapping.Options{})
	a, err := m.Map(rec(3, `{"user_id":"user-0001","event_type":"e","time":1700000000000}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Map(rec(3, `{"user_id":"user-0001","event_type":"e","time":"1700000000000"}`))
	if err != nil {
		t.Fatal(err)
	}
	if a.InsertID != b.InsertID || a.InsertID != mapping.DeriveInsertID(rec(3, "").Pos) {
		t.Fatalf("ids differ: %s %s", a.InsertID, b.InsertID)
	}
}

func TestErrors(t *testing.T) {
	m := newMapper(t, mapping.Options{Preset: "mixpanel"})
	tests := []struct {
		name     string
		in       string
		sentinel error
		code     string
		reason   string
	}{
		{"Filtered", `{"event":"$merge","properties":{"time":1,"distinct_id":"user-1"}}`, mapping.ErrFiltered, "filtered", `filtered: event_type "$merge" is in drop_event_types`},
		{"InvalidJSON", `{"event":`, mapping.ErrRejected, "invalid_json", "invalid JSON"},
		{"MissingID", `{"event":"x","properties":{"time":1618716477}}`, validate.ErrInvalid, "missing_id", "missing user_id and device_id"},
		{"BadTime", `{"event":"x","properties":{"time":"soon","distinct_id":"user-1"}}`, mapping.ErrRejected, "invalid_time", `invalid time: "soon" is not a timestamp`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Map(rec(i, tt.in))
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("err=%v, want Is(%v)", err, tt.sentinel)
			}
			var re *backfill.RecordError
			if !errors.As(err, &re) {
				t.Fatalf("err %T is not a RecordError", err)
			}
			var me *mapping.Error
			if !errors.As(err, &me) || me.Code != tt.code {
				t.Fatalf("code=%v, want %s", me, tt.code)
			}
			if !strings.HasPrefix(re.Reason, tt.reason) || re.Pos.Record != int64(i) || string(re.Raw) != tt.in {
				t.Fatalf("record error %+v", re)
			}
			if me.InsertID != mapping.DeriveInsertID(re.Pos) {
				t.Fatalf("Error.InsertID=%q", me.InsertID)
			}
		})
	}
	s := m.Stats()
	if s.Filtered != 1 || s.Rejected != 3 || s.RejectedBy["missing_id"] != 1 || s.RejectedBy["invalid_time"] != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// An Unchecked record (reader.Options.DeferJSONCheck) gets the reader's
// strict syntax check on the slow path; the fast path takes valid events
// in one scan and must produce what the slow path produces.
func TestUncheckedRecords(t *testing.T) {
	m := newMapper(t, mapping.Options{SkipUserPropertiesSync: true})
	for i, in := range []string{
		`{"user_id":"user-0001","event_type":"e","time":1700000000000,`,
		`{"user_id":"user-0001","event_type":"e","time":1700000000000,"x":01}`,
		`{"user_id":"user-0001","event_type":"e","time":1700000000000,"event_properties":{"k":"a` + "\x01" + `"}}`,
	} {
		r := rec(i, in)
		r.Unchecked = true
		_, err := m.Map(r)
		var me *mapping.Error
		if !errors.As(err, &me) || me.Code != mapping.CodeInvalidJSON || !strings.HasPrefix(me.Record.Reason, "invalid JSON: ") || me.Record.Pos.Line != int64(i+1) {
			t.Errorf("Map(%s) = %v, want an invalid_json error naming line %d", in, err, i+1)
		}
	}
	// Valid records: Unchecked changes nothing.
	for i, in := range []string{
		`{"user_id":"user-0001","device_id":"device-0001","event_type":"e","time":1700000000000,"event_properties":{"k":[1,{"a":null}]}}`,
		`{"user_id":"user-0001","event_type":"e","time":1700000000000,"event_properties":{"k":"caf\u00e9"}}`,
		`{"user_id":"user-0001","event_type":"e","time":1700000000000,"custom":{"k":1}}`,
	} {
		r := rec(i, in)
		want, err := m.Map(r)
		if err != nil {
			t.Fatal(err)
		}
		r.Unchecked = true
		got, err := m.Map(r)
		if err != nil || string(got.Raw) != string(want.Raw) || got.DeviceID != want.DeviceID || got.UserID != want.UserID ||
			got.InsertID != want.InsertID || got.EventType != want.EventType || got.Time != want.Time {
			t.Errorf("Unchecked %s: %+v, %v; want %+v", in, got, err, want)
		}
	}
}

func TestDeadLetterRefeed(t *testing.T) {
	m := newMapper(t, mapping.Options{SkipUserPropertiesSync: true})
	entry := `{"backfill_dead_letter":1,"object":"s3://b/x.jsonl","record":4,"line":5,"stage":"validate","reason":"missing time","insert_id":"bf-orig","data":%s}`
	// Fixed record: mapped with the entry's insert_id.
	ev, err := m.Map(rec(0, fmt.Sprintf(entry, `{"user_id":"user-0001","event_type":"e","time":1700000000000}`)))
	if err != nil {
		t.Fatal(err)
	}
	if ev.InsertID != "bf-orig" || ev.Pos.Record != 0 {
		t.Fatalf("event %+v", ev)
	}
	// A source insert_id still wins.
	ev, err = m.Map(rec(1, fmt.Sprintf(entry, `{"user_id":"user-0001","event_type":"e","time":1700000000000,"insert_id":"src"}`)))
	if err != nil || ev.InsertID != "src" {
		t.Fatalf("event %+v err %v", ev, err)
	}
	// data as a JSON string (the original line was not JSON, then fixed).
	ev, err = m.Map(rec(2, fmt.Sprintf(entry, `"{\"user_id\":\"user-0001\",\"event_type\":\"e\",\"time\":1700000000000}"`)))
	if err != nil || ev.InsertID != "bf-orig" {
		t.Fatalf("event %+v err %v", ev, err)
	}
	// Still bad: Raw is the inner record, so entries never nest.
	_, err = m.Map(rec(3, fmt.Sprintf(entry, `{"user_id":"user-0001","event_type":"e"}`)))
	var re *backfill.RecordError
	var me *mapping.Error
	if !errors.As(err, &re) || string(re.Raw) != `{"user_id":"user-0001","event_type":"e"}` {
		t.Fatalf("err %v raw %q", err, re.Raw)
	}
	if !errors.As(err, &me) || me.InsertID != "bf-orig" {
		t.Fatalf("Error.InsertID=%q, want the entry's", me.InsertID)
	}
	// Entry without data.
	if _, err = m.Map(rec(4, `{"backfill_dead_letter":1,"reason":"x"}`)); !errors.Is(err, mapping.ErrRejected) {
		t.Fatalf("err %v", err)
	}
	if s := m.Stats(); s.Refed != 4 {
		t.Fatalf("stats %+v", s)
	}
	// Other presets unwrap too.
	mp := newMapper(t, mapping.Options{Preset: "mixpanel"})
	ev, err = mp.Map(rec(5, fmt.Sprintf(entry, `{"event":"x","properties":{"time":1618716477,"distinct_id":"user-0001"}}`)))
	if err != nil || ev.InsertID != "bf-orig" || ev.Time != 1618716477000 {
		t.Fatalf("event %+v err %v", ev, err)
	}
}

// hashID is the documented insert_id.hash formula.
func hashID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "bfh-" + hex.EncodeToString(sum[:])[:32]
}

func TestCustomSpec(t *testing.T) {
	const spec = `
name: shop-csv
fields:
  event_type: {from: action, lower: true}
  user_id: [customer.id, customer_email]
  device_id: {from: "cookie\\.id"}
  time: {from: ts, time: auto}
  platform: {const: Web}
  event_properties.source: {const: legacy-shop}
  event_properties.label: {template: "{action}!"}
  revenue: {from: amount, type: float}
  user_properties.$set.tier: tier
unmapped:
  to: event_properties
properties:
  rename: {sku: product_sku}
  drop: [secret, "tmp_*"]
filters:
  drop_event_types: [heartbeat]
  time_from: 2024-01-01
  time_to: "2025-01-01T00:00:00Z"
insert_id:
  hash: [order_id, action]
  require: [order_id]
`
	m := specMapper(t, spec, mapping.Options{})
	if m.FastPath() {
		t.Fatal("custom spec must not use the fast path")
	}
	tests := []struct {
		name, in, want, err string
	}{
		{"OK", `{"action":"PURCHASE","customer":{"id":"cust-0001"},"cookie.id":"cookie-1","ts":"1714566645","amount":"12.50","tier":"gold","sku":"A1","secret":"s","tmp_x":1,"note":"hi","order_id":"o-1"}`,
			`{"user_id":"cust-0001","device_id":"cookie-1","event_type":"purchase","time":1714566645000,"insert_id":"` + hashID("o-1\x1fPURCHASE") + `","platform":"Web","revenue":12.50,"event_properties":{"product_sku":"A1","note":"hi","order_id":"o-1","label":"PURCHASE!","source":"legacy-shop"},"user_properties":{"$set":{"tier":"gold"}}}`, ""},
		{"FallbackID", `{"action":"view","customer_email":"a@example.com","ts":1714566645000}`,
			`{"user_id":"a@example.com","event_type":"view","time":1714566645000,"insert_id":"` + mapping.DeriveInsertID(rec(1, "").Pos) + `","platform":"Web","event_properties":{"label":"view!","source":"legacy-shop"}}`, ""},
		{"DroppedType", `{"action":"heartbeat","customer_email":"a@example.com","ts":1714566645000}`, "", `filtered: event_type "heartbeat" is in drop_event_types`},
		{"TooEarly", `{"action":"view","customer_email":"a@example.com","ts":"2023-12-31T23:59:59Z"}`, "", "filtered: time 1704067199000 is before time_from"},
		{"TooLate", `{"action":"view","customer_email":"a@example.com","ts":"2025-01-01T00:00:00Z"}`, "", "filtered: time 1735689600000 is not before time_to"},
		{"BadAmount", `{"action":"view","customer_email":"a@example.com","ts":1714566645000,"amount":"lots"}`, "", `invalid revenue: "lots" is not a number`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := m.Map(rec(i, tt.in))
			if tt.err != "" {
				var re *backfill.RecordError
				if !errors.As(err, &re) || re.Reason != tt.err {
					t.Fatalf("err=%v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(ev.Raw) != tt.want {
				t.Fatalf("Raw=%s\nwant %s", ev.Raw, tt.want)
			}
		})
	}
}

func TestExtendsAndAllowList(t *testing.T) {
	m := specMapper(t, `
extends: mixpanel
fields:
  os_name: null
  event_properties.plan: properties.Plan
properties:
  allow: [plan, URL]
filters:
  keep_event_types: [Page Viewed]
`, mapping.Options{})
	ev, err := m.Map(rec(0, `{"event":"Page Viewed","properties":{"time":1618716477,"distinct_id":"user-0001","$os":"Linux","URL":"/x","Plan":"pro","Other":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"user_id":"user-0001","event_type":"Page Viewed","time":1618716477000,"insert_id":"` + mapping.DeriveInsertID(rec(0, "").Pos) + `","event_properties":{"URL":"/x","plan":"pro"}}`
	if string(ev.Raw) != want {
		t.Fatalf("Raw=%s\nwant %s", ev.Raw, want)
	}
	if _, err := m.Map(rec(1, `{"event":"Other","properties":{"time":1618716477,"distinct_id":"user-0001"}}`)); !errors.Is(err, mapping.ErrFiltered) {
		t.Fatalf("err=%v", err)
	}
	// The $identify filter of the preset is inherited.
	if _, err := m.Map(rec(2, `{"event":"$identify","properties":{"time":1618716477,"distinct_id":"user-0001"}}`)); !errors.Is(err, mapping.ErrFiltered) {
		t.Fatalf("err=%v", err)
	}
}

func TestExtendsAmplitudeKeepsFastPath(t *testing.T) {
	m := specMapper(t, "extends: amplitude\nfilters:\n  drop_event_types: [noise]\n", mapping.Options{})
	if !m.FastPath() {
		t.Fatal("filters-only spec lost the fast path")
	}
	if _, err := m.Map(rec(0, `{"user_id":"user-0001","event_type":"noise","time":1700000000000}`)); !errors.Is(err, mapping.ErrFiltered) {
		t.Fatalf("err=%v", err)
	}
	m = specMapper(t, "extends: amplitude\nunmapped: {to: drop}\n", mapping.Options{})
	if m.FastPath() {
		t.Fatal("a spec changing the mapping kept the fast path")
	}
	ev, err := m.Map(rec(0, `{"user_id":"user-0001","event_type":"e","time":1700000000000,"extra":1}`))
	if err != nil || bytes.Contains(ev.Raw, []byte("extra")) {
		t.Fatalf("Raw=%s err=%v", ev.Raw, err)
	}
}

func TestSpecErrors(t *testing.T) {
	tests := []struct{ name, spec string }{
		{"UnknownKey", "fieldz: {}"},
		{"UnknownTarget", "fields: {userid: x}"},
		{"UnknownRuleKey", "fields: {user_id: {form: x}}"},
		{"TwoSources", "fields: {user_id: {from: x, const: y}}"},
		{"BadUnit", "fields: {time: {from: t, time: fortnights}}"},
		{"BadEscape", `fields: {user_id: 'a\b'}`},
		{"DottedScalar", "fields: {user_id.x: a}"},
		{"BadUnmapped", "unmapped: {to: nowhere}"},
		{"BadBound", "filters: {time_from: yesterday}"},
		{"UnknownPreset", "extends: heap"},
		{"BadTemplate", "fields: {event_type: {template: 'x {a'}}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := mapping.ParseSpec([]byte(tt.spec))
			if err == nil {
				_, err = mapping.New(mapping.Options{Spec: s})
			}
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, mapping.ErrInvalidSpec) && !errors.Is(err, mapping.ErrUnknownPreset) {
				t.Fatalf("err=%v is neither ErrInvalidSpec nor ErrUnknownPreset", err)
			}
		})
	}
	if _, err := mapping.New(mapping.Options{Preset: "nope"}); !errors.Is(err, mapping.ErrUnknownPreset) {
		t.Fatalf("err=%v", err)
	}
}

func TestLoadSpecJSON(t *testing.T) {
	file := filepath.Join(t.TempDir(), "map.json")
	if err := os.WriteFile(file, []byte(`{"extends":"amplitude","fields":{"user_id":["uid","user_id"]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := mapping.LoadSpec(file)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "map" {
		t.Fatalf("name %q", s.Name)
	}
	m := newMapper(t, mapping.Options{Spec: s})
	ev, err := m.Map(rec(0, `{"uid":"user-0009","event_type":"e","time":1700000000000}`))
	if err != nil || ev.UserID != "user-0009" || bytes.Contains(ev.Raw, []byte(`"uid"`)) {
		t.Fatalf("ev %s err %v", ev.Raw, err)
	}
}

func TestPresetsCompile(t *testing.T) {
	want := []string{"amplitude", "amplitude-export", "ga4", "mixpanel", "posthog", "segment"}
	if got := mapping.Presets(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Presets()=%v", got)
	}
	for _, p := range want {
		m := newMapper(t, mapping.Options{Preset: p})
		if m.Name() != p {
			t.Errorf("Name()=%q, want %q", m.Name(), p)
		}
		if src, err := mapping.PresetSource(p); err != nil || len(src) == 0 {
			t.Errorf("PresetSource(%s): %v", p, err)
		}
	}
}

func TestMinIDLengthOption(t *testing.T) {
	m := newMapper(t, mapping.Options{MinIDLength: 3})
	ev, err := m.Map(rec(0, `{"user_id":"abc","event_type":"e","time":1700000000000}`))
	if err != nil || ev.UserID != "abc" {
		t.Fatalf("ev %+v err %v", ev, err)
	}
}

func TestRepairsCounted(t *testing.T) {
	m := newMapper(t, mapping.Options{})
	long := strings.Repeat("x", 1500)
	ev, err := m.Map(rec(0, `{"user_id":"null","device_id":"device-1","event_type":"e","time":1700000000000,"event_properties":{"a":"`+long+`","b":["`+long+`"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ev.Raw, []byte(`"user_id"`)) || bytes.Contains(ev.Raw, []byte(strings.Repeat("x", 1025))) || !bytes.Contains(ev.Raw, []byte(strings.Repeat("x", 1024))) {
		t.Fatalf("not repaired: %.200s", ev.Raw)
	}
	s := m.Stats()
	if s.Repaired != 1 || s.Truncated != 2 || s.IDsStripped != 1 || s.FastPath != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestConcurrent maps from several goroutines; run with -race.
func TestConcurrent(t *testing.T) {
	for _, preset := range []string{"amplitude", "posthog"} {
		m := newMapper(t, mapping.Options{Preset: preset, SkipUserPropertiesSync: true})
		lines := readLines(t, filepath.Join(fixturesDir, preset, "input.jsonl"))
		want := make([]string, len(lines))
		for i, l := range lines {
			ev, err := m.Map(rec(i, string(l)))
			want[i] = string(ev.Raw) + fmt.Sprint(err)
		}
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; n < 20; n++ {
					for i, l := range lines {
						ev, err := m.Map(rec(i, string(l)))
						if got := string(ev.Raw) + fmt.Sprint(err); got != want[i] {
							t.Errorf("%s line %d differs under concurrency", preset, i+1)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
	}
}

// TestUnsafeBytesLeaveFastPath feeds records fastjson's parser accepts but
// that are not valid JSON on the wire; they must be re-encoded.
func TestUnsafeBytesLeaveFastPath(t *testing.T) {
	m := newMapper(t, mapping.Options{})
	tests := []struct{ name, in, want string }{
		{"ControlChar", "{\"user_id\":\"user-0001\",\"event_type\":\"a\x01b\",\"time\":1700000000000,\"insert_id\":\"i\"}", `"event_type":"a\u0001b"`},
		{"BadEscape", `{"user_id":"user-0001","event_type":"a\xb","time":1700000000000,"insert_id":"i"}`, `"event_type":"a\\xb"`},
		{"BadUTF8", "{\"user_id\":\"user-0001\",\"event_type\":\"a\xffb\",\"time\":1700000000000,\"insert_id\":\"i\"}", `"event_type":"a\ufffdb"`},
		{"GoodEscape", `{"user_id":"user-0001","event_type":"a\u0041\n","time":1700000000000,"insert_id":"i"}`, `"event_type":"a\u0041\n"`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := m.Map(rec(i, tt.in))
			if err != nil {
				t.Skipf("parser refuses the record: %v", err)
			}
			if !bytes.Contains(ev.Raw, []byte(tt.want)) {
				t.Fatalf("Raw=%q, want it to contain %q", ev.Raw, tt.want)
			}
			if _, _, err := mustValidator(t).Event(ev.Raw); err != nil {
				t.Fatalf("Raw is not valid: %v", err)
			}
		})
	}
	if s := m.Stats(); s.FastPath != 1 {
		t.Fatalf("only GoodEscape may take the fast path: %+v", s)
	}
}

func mustValidator(t *testing.T) *validate.Validator {
	v, err := validate.New(validate.Options{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestReadmeExample compiles the mapping file example of the README.
func TestReadmeExample(t *testing.T) {
	doc, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(doc), "### Mapping files")
	_, rest, ok := strings.Cut(section, "```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml example")
	}
	m := specMapper(t, example, mapping.Options{})
	ev, err := m.Map(rec(0, `{"kind":"pageview","page":"Home","action":"VIEW","customer":{"id":"cust-0001"},"ts":1714566645,"sku":"A1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.EventType != "Viewed Home Page" || ev.UserID != "cust-0001" || ev.Time != 1714566645000 {
		t.Fatalf("event %+v", ev)
	}
}
