// Package testutil holds the helpers that several packages' tests share:
// an in-process S3 (gofakes3) with the AWS SDK isolated from the developer's
// machine, an emulator behind a real HTTP server, and a goroutine-safe
// buffer for captured output. Only tests import it.
package testutil

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// AWSEnv isolates the AWS SDK from the developer's configuration and from
// the EC2 metadata endpoint (deps.md §2), as KEY=VALUE pairs for child
// processes; IsolateAWS sets them in the test's own environment.
var AWSEnv = []string{
	"AWS_ACCESS_KEY_ID=test",
	"AWS_SECRET_ACCESS_KEY=test",
	"AWS_SESSION_TOKEN=",
	"AWS_PROFILE=",
	"AWS_CONFIG_FILE=/dev/null",
	"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
	"AWS_EC2_METADATA_DISABLED=true",
}

// IsolateAWS sets AWSEnv for the duration of the test (so the test cannot
// use t.Parallel).
func IsolateAWS(t testing.TB) {
	t.Helper()
	for _, kv := range AWSEnv {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// S3 is an in-process S3 server (gofakes3 over memory) behind httptest.
type S3 struct {
	Endpoint string // http://127.0.0.1:PORT
	Backend  *s3mem.Backend
}

// StartS3 isolates the AWS SDK, starts an S3 server with the given empty
// buckets and stops it when the test ends.
func StartS3(t testing.TB, buckets ...string) *S3 {
	t.Helper()
	return StartS3Delayed(t, nil, buckets...)
}

// StartS3Delayed is StartS3 with each request held for delay(request)
// before it is served (nil: none), like a slow or loaded object store. A
// request whose client goes away during its delay is not served.
func StartS3Delayed(t testing.TB, delay func(*http.Request) time.Duration, buckets ...string) *S3 {
	t.Helper()
	IsolateAWS(t)
	be := s3mem.New()
	for _, b := range buckets {
		if err := be.CreateBucket(b); err != nil {
			t.Fatal(err)
		}
	}
	var h http.Handler = gofakes3.New(be).Server()
	if delay != nil {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if d := delay(r); d > 0 {
				select {
				case <-time.After(d):
				case <-r.Context().Done():
					// The client died during the delay: the write
					// does not happen (never after its successor
					// read the store).
					return
				}
			}
			inner.ServeHTTP(w, r)
		})
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return &S3{Endpoint: ts.URL, Backend: be}
}

// Put stores an object (without a checksum, so ranged reads work).
func (s *S3) Put(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	if _, err := s.Backend.PutObject(bucket, key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}
}

// Query returns the gocloud s3blob URL parameters that reach this server.
func (s *S3) Query() string {
	q := url.Values{}
	q.Set("endpoint", s.Endpoint)
	q.Set("region", "us-east-1")
	q.Set("use_path_style", "true")
	q.Set("response_checksum_validation", "when_required")
	q.Set("request_checksum_calculation", "when_required")
	return q.Encode()
}

// URL returns s3://bucket/prefix with the parameters that reach this server.
func (s *S3) URL(bucket, prefix string) string {
	return "s3://" + bucket + "/" + prefix + "?" + s.Query()
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers (loggers,
// progress displays, child processes' output).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// RawURL returns s3://bucket/prefix with the parameters that reach this
// server written as the README writes them: unencoded
// (endpoint=http://127.0.0.1:PORT&use_path_style=true).
func (s *S3) RawURL(bucket, prefix string) string {
	return "s3://" + bucket + "/" + prefix + "?endpoint=" + s.Endpoint +
		"&use_path_style=true&region=us-east-1&response_checksum_validation=when_required&request_checksum_calculation=when_required"
}
