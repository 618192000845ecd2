package uploader_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/uploader"
)

// testKey is echoed back by the fake server in "Invalid API key" bodies; it
// must never show up in errors or logs.
const testKey = "sk-SECRET-0f1e2d3c4b5a"

// Documented response bodies (amplitude-api.md §6).
const (
	body200          = `{"code":200,"events_ingested":3,"payload_size_bytes":812,"server_upload_time":1717000000123}`
	body400Missing   = `{"code":400,"error":"Request missing required field","missing_field":"api_key"}`
	body400Key       = `{"code":400,"error":"Invalid API key: ` + testKey + `"}`
	body400JSON      = `{"code":400,"error":"Invalid JSON request body"}`
	body400NoBody    = `{"code":400,"error":"Missing request body"}`
	body400Path      = `{"code":400,"error":"Invalid request path"}`
	body400EventJSON = `{"code":400,"error":"Invalid event JSON"}`
	body400Fields    = `{"code":400,"error":"Invalid field values on some events",` +
		`"events_with_invalid_fields":{"time":[1,4]},"events_with_missing_fields":{"event_type":[2]}}`
	body400Silenced = `{"code":400,"error":"Events silenced for device_id","eps_threshold":1000,"exceeded_daily_quota_devices":{},` +
		`"silenced_devices":["dev-spam-77"],"silenced_events":[0,3],"throttled_devices":{},"throttled_events":[]}`
	body403 = `{"code":403,"error":"Forbidden"}`
	body413 = `{"code":413,"error":"Payload too large"}`
	body429 = `{"code":429,"error":"Too many requests for some devices and users","eps_threshold":30,` +
		`"throttled_devices":{"dev-0":41},"throttled_users":{"user-2":33},"throttled_events":[0,2],` +
		`"exceeded_daily_quota_users":{},"exceeded_daily_quota_devices":{}}`
	body429Quota = `{"code":429,"error":"Too many requests for some devices and users","eps_threshold":1000,` +
		`"throttled_devices":{},"throttled_users":{},"throttled_events":[1],` +
		`"exceeded_daily_quota_users":{"user-1":500120},"exceeded_daily_quota_devices":{}}`
	body429Empty = `{"code":429,"error":"Too many requests for some devices and users","eps_threshold":1000,` +
		`"throttled_devices":{},"throttled_users":{},"throttled_events":[],` +
		`"exceeded_daily_quota_users":{},"exceeded_daily_quota_devices":{}}`
)

// reply is one scripted server action.
type reply struct {
	status   int
	body     string
	hangup   bool // close the connection without answering
	truncate bool // declare a longer body than is sent, then close
	hang     bool // block until the client gives up
}

func r(status int, body string) reply { return reply{status: status, body: body} }

// request is what the fake server saw.
type request struct {
	Path    string
	Header  http.Header
	Wire    []byte   // body as sent (maybe gzip)
	JSON    []byte   // body after gunzip
	Key     string   // api_key
	IDs     []string // insert_id of each event, in order
	Options json.RawMessage
}

// server is a scripted httptest server: each request consumes the next
// reply (200 once the script runs out), or asks fn when it is set.
type server struct {
	*httptest.Server
	t      testing.TB
	mu     sync.Mutex
	script []reply
	fn     func(req request) reply
	reqs   []request
	seen   chan struct{} // gets a value on every request, when non-nil
}

func newServer(t testing.TB, script ...reply) *server {
	s := &server{t: t, script: script}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.Close)
	return s
}

func decodeRequest(hr *http.Request) (request, error) {
	req := request{Path: hr.URL.Path, Header: hr.Header.Clone()}
	wire, err := io.ReadAll(hr.Body)
	if err != nil {
		return req, err
	}
	req.Wire = wire
	req.JSON = wire
	if hr.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(wire))
		if err != nil {
			return req, err
		}
		if req.JSON, err = io.ReadAll(zr); err != nil {
			return req, err
		}
	}
	var b struct {
		APIKey string `json:"api_key"`
		Events []struct {
			InsertID string `json:"insert_id"`
		} `json:"events"`
		Options json.RawMessage `json:"options"`
	}
	if err := json.Unmarshal(req.JSON, &b); err != nil {
		return req, err
	}
	req.Key, req.Options = b.APIKey, b.Options
	for _, e := range b.Events {
		req.IDs = append(req.IDs, e.InsertID)
	}
	return req, nil
}

func (s *server) handle(w http.ResponseWriter, hr *http.Request) {
	req, err := decodeRequest(hr)
	if err != nil {
		s.t.Errorf("server: bad request: %v", err)
		http.Error(w, "bad", http.StatusTeapot)
		return
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	rep := r(200, body200)
	switch {
	case s.fn != nil:
		s.mu.Unlock()
		rep = s.fn(req)
		s.mu.Lock()
	case len(s.script) > 0:
		rep, s.script = s.script[0], s.script[1:]
	}
	seen := s.seen
	s.mu.Unlock()
	if seen != nil {
		seen <- struct{}{}
	}
	switch {
	case rep.hang:
		<-hr.Context().Done()
	case rep.hangup:
		hangup(s.t, w)
	case rep.truncate:
		w.Header().Set("Content-Length", strconv.Itoa(len(rep.body)+100))
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, rep.body)
		w.(http.Flusher).Flush()
		hangup(s.t, w)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, rep.body)
	}
}

func hangup(t testing.TB, w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	conn.Close()
}

func (s *server) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

// makeEvents returns n events with unique ids dev-i, user-i, id-i.
func makeEvents(n int) []backfill.Event {
	evs := make([]backfill.Event, n)
	for i := range evs {
		evs[i] = backfill.Event{
			Raw: []byte(fmt.Sprintf(`{"event_type":"Signup","device_id":"dev-%d","user_id":"user-%d","time":1700000000000,"insert_id":"id-%d"}`,
				i, i, i)),
			DeviceID:  fmt.Sprintf("dev-%d", i),
			UserID:    fmt.Sprintf("user-%d", i),
			InsertID:  fmt.Sprintf("id-%d", i),
			EventType: "Signup",
			Time:      1700000000000,
			Pos:       backfill.Position{Object: "mem://t/a.jsonl", Record: int64(i), Line: int64(i + 1)},
		}
	}
	return evs
}

// sleeps records the delays Send asked for, without sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// newClient returns a client for srv that never sleeps and logs to logBuf.
func newClient(t testing.TB, srv *server, logBuf io.Writer, mod func(*uploader.Options)) (*uploader.Client, *sleeps) {
	t.Helper()
	sl := &sleeps{}
	if logBuf == nil {
		logBuf = io.Discard
	}
	opts := uploader.Options{
		Endpoint:   srv.URL,
		APIKey:     testKey,
		HTTPClient: srv.Client(),
		Sleep:      sl.sleep,
		Logger:     slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&opts)
	}
	c, err := uploader.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, sl
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
