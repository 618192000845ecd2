package emulator_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backfillhq/backfill/emulator"
)

const testKey = "test-key-0001"

// t0 is an hour boundary, so day-bucket tests are easy to reason about.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newServer(t testing.TB, cfg emulator.Config) (*emulator.Server, *clock) {
	t.Helper()
	c := &clock{t: t0}
	if cfg.Now == nil {
		cfg.Now = c.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = func(context.Context, time.Duration) error {
			t.Errorf("unexpected sleep")
			return nil
		}
	}
	s, err := emulator.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, c
}

// resp is a decoded answer.
type resp struct {
	Status int
	Body   []byte
	Fields map[string]json.RawMessage
}

func (r resp) int(t testing.TB, k string) int64 {
	t.Helper()
	var n int64
	if err := json.Unmarshal(r.Fields[k], &n); err != nil {
		t.Fatalf("field %q in %s: %v", k, r.Body, err)
	}
	return n
}

func (r resp) str(t testing.TB, k string) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(r.Fields[k], &s); err != nil {
		t.Fatalf("field %q in %s: %v", k, r.Body, err)
	}
	return s
}

// idx decodes a field → indexes map.
func (r resp) idx(t testing.TB, k string) map[string][]int {
	t.Helper()
	var m map[string][]int
	if err := json.Unmarshal(r.Fields[k], &m); err != nil || m == nil {
		t.Fatalf("field %q in %s: %v (nil=%v)", k, r.Body, err, m == nil)
	}
	return m
}

func (r resp) counts(t testing.TB, k string) map[string]int64 {
	t.Helper()
	var m map[string]int64
	if err := json.Unmarshal(r.Fields[k], &m); err != nil || m == nil {
		t.Fatalf("field %q in %s: %v (nil=%v)", k, r.Body, err, m == nil)
	}
	return m
}

func (r resp) ints(t testing.TB, k string) []int {
	t.Helper()
	var s []int
	if err := json.Unmarshal(r.Fields[k], &s); err != nil || s == nil {
		t.Fatalf("field %q in %s: %v (nil=%v)", k, r.Body, err, s == nil)
	}
	return s
}

// requireFields fails unless the body has exactly code == status and all
// the named fields.
func (r resp) requireFields(t testing.TB, fields ...string) {
	t.Helper()
	if got := r.int(t, "code"); got != int64(r.Status) {
		t.Fatalf("code=%d, HTTP status %d; body %s", got, r.Status, r.Body)
	}
	for _, f := range fields {
		if _, ok := r.Fields[f]; !ok {
			t.Errorf("body %s lacks %q", r.Body, f)
		}
	}
}

func do(t testing.TB, h http.Handler, method, path string, body []byte, hdr ...string) resp {
	t.Helper()
	req := httptest.NewRequest(method, "http://api2.amplitude.com"+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	r := resp{Status: rec.Code, Body: rec.Body.Bytes()}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	if err := json.Unmarshal(r.Body, &r.Fields); err != nil {
		t.Fatalf("answer %d is not a JSON object: %q", r.Status, r.Body)
	}
	return r
}

func post(t testing.TB, h http.Handler, path string, body []byte, hdr ...string) resp {
	t.Helper()
	return do(t, h, http.MethodPost, path, body, hdr...)
}

func body(key string, events ...string) []byte {
	return []byte(`{"api_key":"` + key + `","events":[` + strings.Join(events, ",") + `]}`)
}

// ev builds an event for device dev with insert id ins ("" for none).
func ev(dev, ins string) string {
	s := `{"event_type":"Signup","device_id":"` + dev + `","time":1700000000000`
	if ins != "" {
		s += `,"insert_id":"` + ins + `"`
	}
	return s + `}`
}

// evs builds n events for dev with insert ids prefix-0..n-1.
func evs(dev, prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = ev(dev, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var paths = []string{emulator.PathBatch, emulator.PathHTTP}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
