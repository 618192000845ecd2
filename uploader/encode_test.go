package uploader_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/uploader"
)

func TestAppendBody(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		minID  int
		events []backfill.Event
		want   string
	}{
		{"Empty", "K", 0, nil, `{"api_key":"K","events":[]}`},
		{"One", "K", 0, []backfill.Event{{Raw: []byte(`{"a":1}`)}}, `{"api_key":"K","events":[{"a":1}]}`},
		{"Two", "K", 0, []backfill.Event{{Raw: []byte(`{"a":1}`)}, {Raw: []byte(`{"b":2}`)}},
			`{"api_key":"K","events":[{"a":1},{"b":2}]}`},
		{"MinIDLength", "K", 3, []backfill.Event{{Raw: []byte(`{"a":1}`)}},
			`{"api_key":"K","events":[{"a":1}],"options":{"min_id_length":3}}`},
		{"KeyEscaped", `k"\`, 0, []backfill.Event{{Raw: []byte(`{}`)}}, `{"api_key":"k\"\\","events":[{}]}`},
		{"RawVerbatim", "K", 0, []backfill.Event{{Raw: []byte(`{ "z" : 1.50, "a":"\u00e9" }`)}},
			`{"api_key":"K","events":[{ "z" : 1.50, "a":"\u00e9" }]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := uploader.New(uploader.Options{APIKey: tt.key, MinIDLength: tt.minID})
			if err != nil {
				t.Fatal(err)
			}
			got := c.AppendBody([]byte("prefix:"), tt.events)
			if string(got) != "prefix:"+tt.want {
				t.Errorf("AppendBody = %s, want %s", got, tt.want)
			}
			body := got[len("prefix:"):]
			if !json.Valid(body) {
				t.Errorf("body is not valid JSON: %s", body)
			}
			if got, want := c.BodySize(tt.events), len(body); got != want {
				t.Errorf("BodySize = %d, want %d", got, want)
			}
			if got, want := uploader.Overhead(tt.key, tt.minID), c.Overhead(); got != want {
				t.Errorf("Overhead(key, min) = %d, Client.Overhead = %d", got, want)
			}
			sum := 0
			for _, ev := range tt.events {
				sum += len(ev.Raw)
			}
			if n := len(tt.events); n > 0 {
				if got, want := c.Overhead()+sum+n-1, len(body); got != want {
					t.Errorf("Overhead+Σraw+commas = %d, want %d", got, want)
				}
			}
		})
	}
}

// TestBodySizeMatchesWire checks BodySize against the bytes the server
// receives.
func TestBodySizeMatchesWire(t *testing.T) {
	srv := newServer(t)
	c, _ := newClient(t, srv, nil, func(o *uploader.Options) { o.MinIDLength = 12 })
	for _, n := range []int{1, 2, 17, 2000} {
		events := makeEvents(n)
		if _, err := c.Send(context.Background(), backfill.RouteBatch, events); err != nil {
			t.Fatal(err)
		}
		reqs := srv.requests()
		if got, want := len(reqs[len(reqs)-1].Wire), c.BodySize(events); got != want {
			t.Errorf("n=%d: server got %d bytes, BodySize = %d", n, got, want)
		}
	}
}

func benchEvents(n int) []backfill.Event {
	evs := make([]backfill.Event, n)
	for i := range evs {
		evs[i].Raw = []byte(fmt.Sprintf(`{"event_type":"Purchase","user_id":"user-%06d","device_id":"dev-%06d",`+
			`"time":1700000000000,"insert_id":"s3://bucket/events/part-0001.jsonl.gz#%d",`+
			`"event_properties":{"sku":"SKU-%d","price":19.99,"currency":"USD","tags":["a","b","c"]},`+
			`"user_properties":{"plan":"pro"},"$skip_user_properties_sync":true}`, i, i, i, i))
	}
	return evs
}

// BenchmarkEncode measures building a full /batch body (2,000 events).
func BenchmarkEncode(b *testing.B) {
	c, err := uploader.New(uploader.Options{APIKey: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", MinIDLength: 3})
	if err != nil {
		b.Fatal(err)
	}
	evs := benchEvents(uploader.MaxEvents)
	b.SetBytes(int64(c.BodySize(evs)))
	b.ReportAllocs()
	var dst []byte
	for b.Loop() {
		dst = c.AppendBody(dst[:0], evs)
	}
}

// BenchmarkSend measures one full Send of 2,000 events to a local server
// that answers 200, with and without gzip.
func BenchmarkSend(b *testing.B) {
	for _, gz := range []bool{false, true} {
		b.Run(fmt.Sprintf("gzip=%v", gz), func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				_, _ = w.Write([]byte(body200))
			}))
			defer srv.Close()
			c, err := uploader.New(uploader.Options{Endpoint: srv.URL, APIKey: "k", HTTPClient: srv.Client(), Gzip: gz})
			if err != nil {
				b.Fatal(err)
			}
			evs := benchEvents(uploader.MaxEvents)
			b.SetBytes(int64(c.BodySize(evs)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Send(context.Background(), backfill.RouteBatch, evs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// An endpoint given as a full API URL (or with a trailing slash) still
// reaches both paths.
func TestEndpointForms(t *testing.T) {
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		w.Write([]byte(`{"code":200,"events_ingested":1,"payload_size_bytes":10,"server_upload_time":1}`))
	}))
	defer srv.Close()
	ev := []backfill.Event{{Raw: []byte(`{"event_type":"a","device_id":"device-1"}`), DeviceID: "device-1"}}
	for _, ep := range []string{srv.URL, srv.URL + "/", srv.URL + "/batch", srv.URL + "/2/httpapi/"} {
		c, err := uploader.New(uploader.Options{Endpoint: ep, APIKey: "k", HTTPClient: srv.Client()})
		if err != nil {
			t.Fatal(err)
		}
		for _, route := range []backfill.Route{backfill.RouteBatch, backfill.RouteHTTP} {
			if _, err := c.Send(context.Background(), route, ev); err != nil {
				t.Fatalf("%s %v: %v", ep, route, err)
			}
		}
	}
	want := strings.Repeat("/batch /2/httpapi ", 4)
	if got := strings.Join(paths, " ") + " "; got != want {
		t.Fatalf("paths %q, want %q", got, want)
	}
}
