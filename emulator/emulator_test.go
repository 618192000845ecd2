package emulator_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/emulator"
)

// TestRequestChecks covers every request-level step of §11.4, in order,
// on both endpoints.
func TestRequestChecks(t *testing.T) {
	many := evs("device-0001", "m", emulator.MaxEventsPerRequest+1)
	big := `{"event_type":"e","device_id":"device-0001","event_properties":{"pad":"` + strings.Repeat("x", 3000) + `"}}`
	tests := []struct {
		name     string
		cfg      emulator.Config
		body     []byte
		gzip     bool
		hdr      []string
		status   int
		err      string // expected error string ("" for 200)
		missing  string // expected missing_field
		ingested int64
	}{
		{name: "OK", body: body(testKey, ev("device-0001", "a"), ev("device-0002", "b")), status: 200, ingested: 2},
		{name: "OKGzip", body: body(testKey, ev("device-0001", "a")), gzip: true, status: 200, ingested: 1},
		{name: "OKEmptyEvents", body: body(testKey), status: 200},
		{name: "OKUnknownTopLevelKeys", body: []byte(`{"api_key":"k","client_upload_time":"2026-01-01T00:00:00Z","request_metadata":{"sdk":{}},"events":[` + ev("device-0001", "") + `]}`), status: 200, ingested: 1},
		{name: "OKCharset", cfg: emulator.Config{Strict: true}, hdr: []string{"Content-Type", "application/json; charset=UTF-8"}, body: body(testKey, ev("device-0001", "")), status: 200, ingested: 1},
		{name: "OKNonStrictTextPlain", hdr: []string{"Content-Type", "text/plain"}, body: body(testKey, ev("device-0001", "")), status: 200, ingested: 1},
		{name: "StrictTextPlain", cfg: emulator.Config{Strict: true}, hdr: []string{"Content-Type", "text/plain"}, body: body(testKey, ev("device-0001", "")), status: 400, err: "Invalid request content type"},
		{name: "UnknownEncoding", hdr: []string{"Content-Encoding", "br"}, body: body(testKey, ev("device-0001", "")), status: 400, err: "Invalid request content encoding"},
		{name: "EmptyBody", body: nil, status: 400, err: "Missing request body"},
		{name: "WhitespaceBody", body: []byte(" \n\t"), status: 400, err: "Missing request body"},
		{name: "EmptyGzipBody", body: nil, gzip: true, status: 400, err: "Missing request body"},
		{name: "BadJSON", body: []byte(`{"api_key":"k","events":[{]}`), status: 400, err: "Invalid JSON request body"},
		{name: "BadJSONNaN", body: []byte(`{"api_key":"k","events":[{"event_type":"e","device_id":"device-0001","time":NaN}]}`), status: 400, err: "Invalid JSON request body"},
		{name: "TopLevelArray", body: []byte(`[]`), status: 400, err: "Invalid JSON request body"},
		{name: "BadGzip", body: []byte("\x1f\x8b\x08\x00garbage"), hdr: []string{"Content-Encoding", "gzip"}, status: 400, err: "Invalid JSON request body"},
		{name: "TooLarge", cfg: emulator.Config{MaxBatchBytes: 2000, MaxHTTPBytes: 2000}, body: body(testKey, big), status: 413, err: "Payload too large"},
		{name: "TooLargeMeasuredDecompressed", cfg: emulator.Config{MaxBatchBytes: 2000, MaxHTTPBytes: 2000}, body: body(testKey, big), gzip: true, status: 413, err: "Payload too large"},
		{name: "TooLargeUnlimited", cfg: emulator.Config{MaxBatchBytes: emulator.Unlimited, MaxHTTPBytes: emulator.Unlimited}, body: body(testKey, big), status: 200, ingested: 1},
		{name: "BadJSONBeatsTooLarge", cfg: emulator.Config{MaxBatchBytes: 100, MaxHTTPBytes: 100}, body: append(body(testKey, big), '}'), status: 400, err: "Invalid JSON request body"},
		{name: "TooLargeBeatsMissingKey", cfg: emulator.Config{MaxBatchBytes: 100, MaxHTTPBytes: 100}, body: []byte(`{"events":[` + big + `]}`), status: 413, err: "Payload too large"},
		{name: "MissingAPIKey", body: []byte(`{"events":[` + ev("device-0001", "") + `]}`), status: 400, err: "Request missing required field", missing: "api_key"},
		{name: "EmptyAPIKey", body: body("", ev("device-0001", "")), status: 400, err: "Request missing required field", missing: "api_key"},
		{name: "MissingEvents", body: []byte(`{"api_key":"k"}`), status: 400, err: "Request missing required field", missing: "events"},
		{name: "EventsNotArray", body: []byte(`{"api_key":"k","events":{}}`), status: 400, err: "Request missing required field", missing: "events"},
		{name: "MissingBothReportsKey", body: []byte(`{}`), status: 400, err: "Request missing required field", missing: "api_key"},
		{name: "UnknownKey", cfg: emulator.Config{APIKeys: []string{"good-key"}}, body: body("bad-key", ev("device-0001", "")), status: 400, err: "Invalid API key: bad-key"},
		{name: "KnownKey", cfg: emulator.Config{APIKeys: []string{"other", "good-key"}}, body: body("good-key", ev("device-0001", "")), status: 200, ingested: 1},
		{name: "MissingFieldBeatsUnknownKey", cfg: emulator.Config{APIKeys: []string{"good-key"}}, body: []byte(`{"api_key":"bad-key"}`), status: 400, err: "Request missing required field", missing: "events"},
		{name: "TooManyEvents", body: body(testKey, many...), status: 413, err: "Payload too large"},
		{name: "UnknownKeyBeatsTooManyEvents", cfg: emulator.Config{APIKeys: []string{"good-key"}}, body: body("bad-key", many...), status: 400, err: "Invalid API key: bad-key"},
		{name: "NonObjectEvent", body: body(testKey, ev("device-0001", ""), `"not an object"`), status: 400, err: "Invalid event JSON"},
		{name: "TooManyBeatsNonObject", body: body(testKey, append(many, `1`)...), status: 413, err: "Payload too large"},
		{name: "NonObjectBeatsFieldErrors", body: body(testKey, `{"device_id":"device-0001"}`, `[]`), status: 400, err: "Invalid event JSON"},
	}
	for _, path := range paths {
		for _, tt := range tests {
			t.Run(strings.TrimPrefix(path, "/")+"/"+tt.name, func(t *testing.T) {
				s, c := newServer(t, tt.cfg)
				b := tt.body
				hdr := tt.hdr
				if tt.gzip {
					b = gz(t, b)
					hdr = append(hdr, "Content-Encoding", "gzip")
				}
				r := post(t, s, path, b, hdr...)
				if r.Status != tt.status {
					t.Fatalf("status %d, want %d; body %s", r.Status, tt.status, r.Body)
				}
				switch tt.status {
				case 200:
					r.requireFields(t, "events_ingested", "payload_size_bytes", "server_upload_time")
					if got := r.int(t, "events_ingested"); got != tt.ingested {
						t.Errorf("events_ingested=%d, want %d", got, tt.ingested)
					}
					if got, want := r.int(t, "payload_size_bytes"), int64(len(tt.body)); got != want {
						t.Errorf("payload_size_bytes=%d, want %d (decompressed)", got, want)
					}
					if got, want := r.int(t, "server_upload_time"), c.Now().UnixMilli(); got != want {
						t.Errorf("server_upload_time=%d, want %d", got, want)
					}
				case 400:
					r.requireFields(t, "error", "events_with_invalid_fields", "events_with_missing_fields")
				default:
					r.requireFields(t, "error")
				}
				if tt.err != "" {
					if got := r.str(t, "error"); got != tt.err {
						t.Errorf("error=%q, want %q", got, tt.err)
					}
				}
				if tt.missing != "" {
					if got := r.str(t, "missing_field"); got != tt.missing {
						t.Errorf("missing_field=%q, want %q", got, tt.missing)
					}
				} else if _, ok := r.Fields["missing_field"]; ok {
					t.Errorf("unexpected missing_field in %s", r.Body)
				}
				if got := int64(len(s.Events())); got != tt.ingested {
					t.Errorf("recorded %d events, want %d", got, tt.ingested)
				}
			})
		}
	}
}

// TestEventChecks covers §11.5: every offending index is listed under the
// right key and missing_field is never set.
func TestEventChecks(t *testing.T) {
	tests := []struct {
		name    string
		events  []string
		options string
		invalid map[string][]int
		missing map[string][]int
		idLen   map[string][]int
	}{
		// Real servers answer a short user_id next to a valid device_id with
		// 400 events_with_invalid_id_lengths (Amplitude-Kotlin#105,
		// Amplitude-TypeScript#81): the id is not stripped.
		{name: "ShortUserValidDevice", events: []string{`{"event_type":"e","user_id":"ab","device_id":"device-0001"}`}, idLen: map[string][]int{"user_id": {0}}},
		{name: "ShortDeviceValidUser", events: []string{`{"event_type":"e","user_id":"user-0001","device_id":"1"}`}, idLen: map[string][]int{"device_id": {0}}},
		{name: "OKMinIDLengthOption", options: `{"min_id_length":3}`, events: []string{`{"event_type":"e","user_id":"abc"}`}},
		{name: "OKNullTime", events: []string{`{"event_type":"e","user_id":"user-0001","time":null}`}},
		{name: "OKNegativeTime", events: []string{`{"event_type":"e","user_id":"user-0001","time":-5}`}},
		{name: "OKUnicodeIDCountsRunes", events: []string{`{"event_type":"e","user_id":"ééééé"}`}},
		{name: "OKIdentify", events: []string{`{"event_type":"$identify","user_id":"user-0001","user_properties":{"$set":{"a":1}}}`}},
		{name: "MissingEventType", events: []string{`{"user_id":"user-0001"}`, `{"event_type":"","user_id":"user-0001"}`, `{"event_type":null,"user_id":"user-0001"}`},
			missing: map[string][]int{"event_type": {0, 1, 2}}},
		{name: "EventTypeNotString", events: []string{`{"event_type":5,"user_id":"user-0001"}`}, invalid: map[string][]int{"event_type": {0}}},
		{name: "NoID", events: []string{`{"event_type":"e"}`, `{"event_type":"e","user_id":"","device_id":null}`},
			missing: map[string][]int{"user_id": {0, 1}}},
		{name: "ShortUserOnly", events: []string{`{"event_type":"e","user_id":"abcd"}`}, idLen: map[string][]int{"user_id": {0}}},
		{name: "ShortBoth", events: []string{`{"event_type":"e","user_id":"ab","device_id":"cd"}`}, idLen: map[string][]int{"user_id": {0}, "device_id": {0}}},
		{name: "ShortWithMinIDLengthOption", options: `{"min_id_length":8}`, events: []string{`{"event_type":"e","device_id":"device-1"}`, `{"event_type":"e","device_id":"dev-1"}`},
			idLen: map[string][]int{"device_id": {1}}},
		{name: "BlockedUser", events: []string{`{"event_type":"e","user_id":"anonymous"}`, `{"event_type":"e","user_id":"Undefined"}`},
			invalid: map[string][]int{"user_id": {0, 1}}},
		{name: "BlockedDeviceZeroIDFA", events: []string{`{"event_type":"e","user_id":"user-0001","device_id":"00000000-0000-0000-0000-000000000000"}`},
			invalid: map[string][]int{"device_id": {0}}},
		{name: "BlockedShortWhenMinLowered", options: `{"min_id_length":1}`, events: []string{`{"event_type":"e","user_id":"nil"}`, `{"event_type":"e","device_id":"-1"}`, `{"event_type":"e","device_id":"\"\""}`},
			invalid: map[string][]int{"user_id": {0}, "device_id": {1, 2}}},
		{name: "BlockedButStrippedFirst", events: []string{`{"event_type":"e","user_id":"null"}`}, idLen: map[string][]int{"user_id": {0}}},
		{name: "IDNotString", events: []string{`{"event_type":"e","user_id":12345}`}, invalid: map[string][]int{"user_id": {0}}},
		{name: "TimeFloat", events: []string{`{"event_type":"e","user_id":"user-0001","time":1700000000000.5}`}, invalid: map[string][]int{"time": {0}}},
		{name: "TimeExponent", events: []string{`{"event_type":"e","user_id":"user-0001","time":1.7e12}`}, invalid: map[string][]int{"time": {0}}},
		{name: "TimeString", events: []string{`{"event_type":"e","user_id":"user-0001","time":"1700000000000"}`, `{"event_type":"e","user_id":"user-0001","time":"2024-01-01T00:00:00Z"}`},
			invalid: map[string][]int{"time": {0, 1}}},
		{name: "ReservedEventType", events: []string{`{"event_type":"[Amplitude] Start Session","user_id":"user-0001"}`, `{"event_type":"[Amplitude] Revenue (Verified)","user_id":"user-0001"}`},
			invalid: map[string][]int{"event_type": {0, 1}}},
		{name: "InsertIDNotString", events: []string{`{"event_type":"e","user_id":"user-0001","insert_id":7}`}, invalid: map[string][]int{"insert_id": {0}}},
		{name: "AllIndexesListed", events: []string{
			`{"event_type":"e","user_id":"user-0001","time":1.5}`,
			`{"event_type":"e","user_id":"user-0001"}`,
			`{"user_id":"user-0001","time":"x"}`,
			`{"event_type":"e"}`,
			`{"event_type":"e","device_id":"abc"}`,
		},
			invalid: map[string][]int{"time": {0, 2}},
			missing: map[string][]int{"event_type": {2}, "user_id": {3}},
			idLen:   map[string][]int{"device_id": {4}}},
	}
	for _, path := range paths {
		for _, tt := range tests {
			t.Run(strings.TrimPrefix(path, "/")+"/"+tt.name, func(t *testing.T) {
				s, _ := newServer(t, emulator.Config{})
				b := body(testKey, tt.events...)
				if tt.options != "" {
					b = []byte(`{"api_key":"k","options":` + tt.options + `,"events":[` + strings.Join(tt.events, ",") + `]}`)
				}
				r := post(t, s, path, b)
				ok := tt.invalid == nil && tt.missing == nil && tt.idLen == nil
				if ok {
					if r.Status != 200 {
						t.Fatalf("status %d, want 200; body %s", r.Status, r.Body)
					}
					if got, want := len(s.Events()), len(tt.events); got != want {
						t.Fatalf("recorded %d events, want %d", got, want)
					}
					return
				}
				if r.Status != 400 {
					t.Fatalf("status %d, want 400; body %s", r.Status, r.Body)
				}
				r.requireFields(t, "error", "events_with_invalid_fields", "events_with_missing_fields", "events_with_invalid_id_lengths")
				wantErr := "Invalid field values on some events"
				if tt.invalid == nil && tt.missing == nil {
					wantErr = "Invalid id length for user_id or device_id"
				}
				if got := r.str(t, "error"); got != wantErr {
					t.Errorf("error=%q, want %q", got, wantErr)
				}
				if _, ok := r.Fields["missing_field"]; ok {
					t.Errorf("missing_field set for per-event problems: %s", r.Body)
				}
				for key, want := range map[string]map[string][]int{
					"events_with_invalid_fields":     tt.invalid,
					"events_with_missing_fields":     tt.missing,
					"events_with_invalid_id_lengths": tt.idLen,
				} {
					if want == nil {
						want = map[string][]int{}
					}
					if got := r.idx(t, key); !reflect.DeepEqual(got, want) {
						t.Errorf("%s=%v, want %v", key, got, want)
					}
				}
				if n := len(s.Events()); n != 0 {
					t.Errorf("a 400 ingested %d events", n)
				}
			})
		}
	}
}

func TestPathAndMethod(t *testing.T) {
	s, _ := newServer(t, emulator.Config{})
	tests := []struct {
		method, path string
		status       int
		err          string
	}{
		{http.MethodPost, "/2/httpapi/", 400, "Invalid request path"},
		{http.MethodPost, "/httpapi", 400, "Invalid request path"},
		{http.MethodGet, "/nope", 400, "Invalid request path"},
		{http.MethodGet, "/batch", 405, "Method not allowed"},
		{http.MethodPut, "/2/httpapi", 405, "Method not allowed"},
		{http.MethodPost, "/_emulator/stats", 405, "Method not allowed"},
		{http.MethodGet, "/_emulator/reset", 405, "Method not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			r := do(t, s, tt.method, tt.path, body(testKey, ev("device-0001", "")))
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d", r.Status, tt.status)
			}
			r.requireFields(t, "error")
			if got := r.str(t, "error"); got != tt.err {
				t.Errorf("error=%q, want %q", got, tt.err)
			}
		})
	}
	if n := len(s.Events()); n != 0 {
		t.Errorf("ingested %d events", n)
	}
}

func TestAnyHost(t *testing.T) {
	s, _ := newServer(t, emulator.Config{})
	for _, host := range []string{"api2.amplitude.com", "api.eu.amplitude.com", "127.0.0.1:1234"} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+host+"/batch", bytes.NewReader(body(testKey, ev("device-0001", ""))))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Errorf("host %s: status %d", host, rec.Code)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  emulator.Config
	}{
		{"RateAboveOne", emulator.Config{Faults: emulator.Faults{DropRate: 1.5}}},
		{"NegativeRate", emulator.Config{Faults: emulator.Faults{ThrottleRate: -0.1}}},
		{"RatesSumAboveOne", emulator.Config{Faults: emulator.Faults{DropRate: 0.6, FailAfterRate: 0.6}}},
		{"Non5xxServerError", emulator.Config{Faults: emulator.Faults{ServerErrors: []int{404}}}},
		{"NegativeLatency", emulator.Config{Faults: emulator.Faults{Latency: -1}}},
		{"EmptyAPIKey", emulator.Config{APIKeys: []string{""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := emulator.New(tt.cfg); !errors.Is(err, emulator.ErrInvalidConfig) {
				t.Fatalf("err=%v, want ErrInvalidConfig", err)
			}
		})
	}
}

// TestEventsKeptAsReceived checks unknown event keys survive byte for byte,
// per-device order is kept, and the route is recorded.
func TestEventsKeptAsReceived(t *testing.T) {
	var rec bytes.Buffer
	s, _ := newServer(t, emulator.Config{Record: &rec})
	e1 := `{"event_type":"a","device_id":"device-A","zzz_custom":{"nested":[1,2.50,"\u00e9"]},"insert_id":"1"}`
	e2 := `{"event_type":"b","device_id":"device-B","insert_id":"2"}`
	e3 := `{"event_type":"c","device_id":"device-A","insert_id":"3"}`
	e4 := "{\"event_type\":\"d\",\n \"device_id\":\"device-A\"}"
	post(t, s, "/batch", body(testKey, e1, e2))
	post(t, s, "/2/httpapi", body(testKey, e3, e4, e1)) // e1 again: duplicate
	got := s.Events()
	want := []emulator.Recorded{
		{Route: backfill.RouteBatch, Event: json.RawMessage(e1), DeviceID: "device-A", InsertID: "1"},
		{Route: backfill.RouteBatch, Event: json.RawMessage(e2), DeviceID: "device-B", InsertID: "2"},
		{Route: backfill.RouteHTTP, Event: json.RawMessage(e3), DeviceID: "device-A", InsertID: "3"},
		{Route: backfill.RouteHTTP, Event: json.RawMessage(`{"event_type":"d","device_id":"device-A"}`), DeviceID: "device-A"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Route != want[i].Route || string(got[i].Event) != string(want[i].Event) ||
			got[i].DeviceID != want[i].DeviceID || got[i].UserID != want[i].UserID || got[i].InsertID != want[i].InsertID {
			t.Errorf("event %d = %+v (%s), want %+v (%s)", i, got[i], got[i].Event, want[i], want[i].Event)
		}
	}
	// Record file: one line per accepted non-duplicate event.
	lines := strings.Split(strings.TrimSuffix(rec.String(), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("record has %d lines, want %d:\n%s", len(lines), len(want), rec.String())
	}
	wantLines := []string{
		`{"endpoint":"batch","event":` + e1 + `}`,
		`{"endpoint":"batch","event":` + e2 + `}`,
		`{"endpoint":"httpapi","event":` + e3 + `}`,
		`{"endpoint":"httpapi","event":{"event_type":"d","device_id":"device-A"}}`,
	}
	for i, l := range lines {
		if l != wantLines[i] {
			t.Errorf("line %d = %s, want %s", i, l, wantLines[i])
		}
		var r emulator.Recorded
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Route != want[i].Route {
			t.Errorf("line %d does not round-trip: %v %+v", i, err, r)
		}
	}
}

// TestLongStringsTruncated: string values over 1,024 characters are stored
// cut to 1,024 characters (code points, escapes decoded), as the SDKs
// truncate; keys, shorter strings and the rest of the event are kept as
// received.
func TestLongStringsTruncated(t *testing.T) {
	long := strings.Repeat("é", 1030)
	exact := strings.Repeat("x", 1024)
	escaped := strings.Repeat(`\u0041`, 1025) // 1,025 characters in 6,150 bytes
	key := strings.Repeat("k", 1100)
	raw := `{"event_type":"e","device_id":"device-0001","event_properties":{"long":"` + long +
		`","exact":"` + exact + `","esc":"` + escaped + `","` + key + `":1,"list":["` + long + `",2]}}`
	s, _ := newServer(t, emulator.Config{})
	requireOK(t, post(t, s, "/batch", body(testKey, raw)))
	got := s.Events()
	if len(got) != 1 {
		t.Fatalf("recorded %d events, want 1", len(got))
	}
	var e struct {
		Props map[string]any `json:"event_properties"`
	}
	if err := json.Unmarshal(got[0].Event, &e); err != nil {
		t.Fatalf("stored event is not JSON: %v", err)
	}
	want1024 := strings.Repeat("é", 1024)
	if v := e.Props["long"]; v != want1024 {
		t.Errorf("long has %d characters, want 1024", len([]rune(v.(string))))
	}
	if v := e.Props["exact"]; v != exact {
		t.Errorf("a 1,024-character string was changed")
	}
	if v := e.Props["esc"]; v != strings.Repeat("A", 1024) {
		t.Errorf("escaped string not cut to 1,024 characters: %d", len([]rune(v.(string))))
	}
	if _, ok := e.Props[key]; !ok {
		t.Errorf("a long key was changed")
	}
	if l := e.Props["list"].([]any); l[0] != want1024 || l[1] != float64(2) {
		t.Errorf("list=%v", l)
	}
	if got := s.Stats().StringsTruncated; got != 3 {
		t.Errorf("StringsTruncated=%d, want 3", got)
	}
}
