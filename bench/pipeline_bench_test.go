package bench_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/backfillhq/backfill/job"
)

// benchEvents is the number of events of one job in BenchmarkJob.
const benchEvents = 100_000

// discard is an http.RoundTripper that reads each request body and answers
// 200, so the benchmark measures our side only (read, map, chunk, encode,
// checkpoint) without an emulator in the same process.
type discard struct{ requests, bytes atomic.Int64 }

func (d *discard) RoundTrip(r *http.Request) (*http.Response, error) {
	n, err := io.Copy(io.Discard, r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	d.requests.Add(1)
	d.bytes.Add(n)
	body := `{"code":200,"events_ingested":1,"payload_size_bytes":1,"server_upload_time":1}`
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": []string{"application/json"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}, nil
}

// writeEvents writes n ~440-byte Amplitude events over 5,000 devices as
// JSON lines (gzipped when the name ends in .gz).
func writeEvents(tb testing.TB, path string, n int) {
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	var w io.Writer = f
	var zw *gzip.Writer
	if strings.HasSuffix(path, ".gz") {
		zw = gzip.NewWriter(f)
		w = zw
	}
	bw := bufio.NewWriter(w)
	for i := range n {
		d := i * 7919 % 5000
		fmt.Fprintf(bw, `{"user_id":"user-%08d","device_id":"0c6f3a2e-7d41-4b9a-9e55-%012d","event_type":"Product Viewed","time":%d,`+
			`"insert_id":"bench-1-%010d","session_id":1704067200000,"platform":"iOS","os_name":"ios","country":"Germany","city":"Berlin",`+
			`"event_properties":{"path":"/products/%d","referrer":"https://www.google.com/","amount":%d.99,"items":["sku-%d","sku-17"],`+
			`"experiment":{"id":"exp-3","variant":"b"}},"user_properties":{"plan":"pro","seats":%d,"signup":"2023-04-12"}}`+"\n",
			d, d, 1704067200000+int64(i), i, i%100000, i%500, i%10000, 1+d%20)
	}
	if err := bw.Flush(); err != nil {
		tb.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkJob runs whole jobs (job.Run: list, read, map, chunk, encode,
// send, checkpoint, report) over a 100,000-event file with the CLI's
// defaults, against a transport that discards the requests. One op is one
// job; events/s, B/event and allocs/event are per event.
func BenchmarkJob(b *testing.B) {
	for _, name := range []string{"events.jsonl", "events.jsonl.gz"} {
		b.Run(strings.TrimPrefix(name, "events."), func(b *testing.B) {
			dir := b.TempDir()
			src := filepath.Join(dir, name)
			writeEvents(b, src, benchEvents)
			tr := &discard{}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			var ms0, ms1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms0)
			b.ResetTimer()
			i := 0
			for b.Loop() {
				i++
				cfg := job.Config{
					Sources:                []string{src},
					Preset:                 "amplitude",
					SkipUserPropertiesSync: true,
					Endpoint:               "http://backfill.invalid",
					APIKey:                 "bench-not-a-real-key",
					HTTPClient:             &http.Client{Transport: tr},
					Checkpoint:             filepath.Join(dir, fmt.Sprintf("ck-%d", i)),
					Logger:                 log,
				}
				rep, err := job.Run(context.Background(), context.Background(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				if rep.EventsAccepted != benchEvents {
					b.Fatalf("accepted %d of %d", rep.EventsAccepted, benchEvents)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			events := float64(i) * benchEvents
			b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/events, "B/event")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/events, "allocs/event")
			b.ReportMetric(float64(tr.bytes.Load())/events, "sent-B/event")
		})
	}
}
