package emulator_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill/emulator"
)

// benchBody is a 2,000-event /batch body over 200 devices and 50 users,
// ~330 bytes per event, with insert ids "iNNNNNNNNNN-k" whose 10-digit
// iteration number is rewritten in place at the returned offsets.
func benchBody() ([]byte, []int) {
	var sb strings.Builder
	sb.WriteString(`{"api_key":"bench-key","events":[`)
	var offs []int
	for k := range emulator.MaxEventsPerRequest {
		if k > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"event_type":"Page View","user_id":"user-%04d","device_id":"device-%05d","time":%d,"insert_id":"i`,
			k%50, k%200, 1700000000000+k)
		offs = append(offs, sb.Len())
		fmt.Fprintf(&sb, `0000000000-%d","platform":"Web","os_name":"Chrome","country":"France",`+
			`"event_properties":{"path":"/products/%d","referrer":"https://example.com/?q=a%%20b","tags":["x","y"],"n":%d},`+
			`"user_properties":{"plan":"pro","seats":3}}`, k, k, k)
	}
	sb.WriteString(`]}`)
	return []byte(sb.String()), offs
}

// BenchmarkHandlerBatch measures the whole handler (parse, validate,
// throttle, dedupe, record) on unique events; it reports events/s.
func BenchmarkHandlerBatch(b *testing.B) {
	c := &clock{t: t0}
	s, err := emulator.New(emulator.Config{Now: c.Now, BatchEPS: emulator.Unlimited, DailyQuota: emulator.Unlimited})
	if err != nil {
		b.Fatal(err)
	}
	body, offs := benchBody()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		num := fmt.Appendf(nil, "%010d", i)
		for _, o := range offs {
			copy(body[o:], num)
		}
		c.Advance(time.Second)
		req := httptest.NewRequest(http.MethodPost, "/batch", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(b.N)*emulator.MaxEventsPerRequest/b.Elapsed().Seconds(), "events/s")
	if got := s.Stats().EventsAccepted; got != int64(b.N)*emulator.MaxEventsPerRequest {
		b.Fatalf("accepted %d, want %d", got, b.N*emulator.MaxEventsPerRequest)
	}
}

// workloadBody is a 2,000-event /batch body shaped like the end-to-end
// benchmark's (bench/): ~440-byte events over 5,000 devices with nested
// event_properties and user_properties, as the uploader encodes them. The
// 10-digit request number of each insert id is rewritten in place at the
// returned offsets.
func workloadBody() ([]byte, []int) {
	var sb strings.Builder
	sb.WriteString(`{"api_key":"bench-not-a-real-key","events":[`)
	var offs []int
	for i := range emulator.MaxEventsPerRequest {
		if i > 0 {
			sb.WriteByte(',')
		}
		d := i * 7919 % 5000
		fmt.Fprintf(&sb, `{"user_id":"user-%08d","device_id":"0c6f3a2e-7d41-4b9a-9e55-%012d","event_type":"Product Viewed","time":%d,"insert_id":"bench-`,
			d, d, 1704067200000+int64(i))
		offs = append(offs, sb.Len())
		fmt.Fprintf(&sb, `0000000000-%04d","session_id":1704067200000,"platform":"iOS","os_name":"ios","country":"Germany","city":"Berlin",`+
			`"event_properties":{"path":"/products/%d","referrer":"https://www.google.com/","amount":%d.99,"items":["sku-%d","sku-17"],`+
			`"experiment":{"id":"exp-3","variant":"b"}},"user_properties":{"plan":"pro","seats":%d,"signup":"2023-04-12"}}`,
			i, i, i%500, i, 1+d%20)
	}
	sb.WriteString(`],"options":{"min_id_length":5}}`)
	return []byte(sb.String()), offs
}

// BenchmarkHandlerBatchWorkload is BenchmarkHandlerBatch with the end-to-end
// benchmark's emulator settings (`--batch-eps 0 --http-eps 0 --daily-quota
// 0 --keep-events=false`) and bodies; it reports CPU time per event.
func BenchmarkHandlerBatchWorkload(b *testing.B) {
	c := &clock{t: t0}
	s, err := emulator.New(emulator.Config{Now: c.Now, BatchEPS: emulator.Unlimited, HTTPEPS: emulator.Unlimited,
		DailyQuota: emulator.Unlimited, DiscardEvents: true})
	if err != nil {
		b.Fatal(err)
	}
	body, offs := workloadBody()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu0 := processCPU()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		num := fmt.Appendf(nil, "%010d", i)
		for _, o := range offs {
			copy(body[o:], num)
		}
		c.Advance(5 * time.Millisecond) // ~400k events/s
		req := httptest.NewRequest(http.MethodPost, "/batch", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	events := float64(b.N * emulator.MaxEventsPerRequest)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/events, "cpu-ns/event")
	if got := s.Stats().EventsAccepted; got != int64(b.N)*emulator.MaxEventsPerRequest {
		b.Fatalf("accepted %d, want %d", got, b.N*emulator.MaxEventsPerRequest)
	}
}
