package mapping_test

import (
	"fmt"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/mapping"
	"github.com/valyala/fastjson"
)

// A ~400-byte event already in Amplitude's shape.
const benchEvent = `{"user_id":"user-000123456","device_id":"3f2a9c1e-5b7d-4e8a-9c0d-1e2f3a4b5c6d","event_type":"Checkout Completed","time":1714566645123,"session_id":1714566600000,"platform":"Web","os_name":"Chrome","os_version":"124","country":"Germany","city":"Berlin","event_properties":{"cart_id":"c-88231","items":3,"total":129.97,"currency":"EUR","coupon":"SPRING24","path":"/checkout/complete"},"user_properties":{"plan":"pro","seats":12}}`

// The same event as a CSV row turned into JSON (every cell a string).
const benchCSV = `{"user_id":"user-000123456","device_id":"3f2a9c1e-5b7d-4e8a-9c0d-1e2f3a4b5c6d","event_type":"Checkout Completed","time":"1714566645123","session_id":"1714566600000","platform":"Web","os_name":"Chrome","os_version":"124","country":"Germany","city":"Berlin","event_properties.cart_id":"c-88231","event_properties.items":"3","event_properties.total":"129.97","event_properties.currency":"EUR","coupon":"SPRING24","path":"/checkout/complete"}`

func benchMap(b *testing.B, opt mapping.Options, data string, wantFast bool) {
	m := newMapper(b, opt)
	rec := backfill.Record{Pos: backfill.Position{Object: "s3://bucket/events/part-00001.jsonl.gz"}, Data: []byte(data)}
	if _, err := m.Map(rec); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rec
		for pb.Next() {
			r.Pos.Record++
			if _, err := m.Map(r); err != nil {
				panic(err)
			}
		}
	})
	b.StopTimer()
	if s := m.Stats(); (s.FastPath > 0) != wantFast {
		b.Fatalf("fast path used=%v, want %v", s.FastPath > 0, wantFast)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkMapFastPath: records already in Amplitude's shape (copied, with
// insert_id and $skip_user_properties_sync spliced in).
func BenchmarkMapFastPath(b *testing.B) {
	benchMap(b, mapping.Options{SkipUserPropertiesSync: true}, benchEvent, true)
}

// BenchmarkMapGeneric: CSV-style records re-encoded by the amplitude preset.
func BenchmarkMapGeneric(b *testing.B) {
	benchMap(b, mapping.Options{SkipUserPropertiesSync: true}, benchCSV, false)
}

// BenchmarkMapPreset: one vendor record per preset.
func BenchmarkMapPreset(b *testing.B) {
	for _, p := range []struct{ preset, data string }{
		{"mixpanel", `{"event":"Signed Up","properties":{"time":1618716477,"distinct_id":"91304156-cafc-4673-a237-623d1129c801","$device_id":"17b1c8e3a0c4d1-0a1b2c3d","$insert_id":"29fc2962-6d9c-455d-95ad-95b84f09b9e4","$browser":"Chrome","$city":"San Francisco","$region":"California","mp_country_code":"US","$os":"Mac OS X","$current_url":"https://example.com/signup","mp_lib":"web","$lib_version":"2.47.0","Referred by":"Friend"}}`},
		{"segment", `{"type":"track","event":"Order Completed","userId":"user-1001","anonymousId":"507f191e810c19729de860ea","messageId":"ajs-next-1a2b3c4d","timestamp":"2024-05-01T12:30:45.123Z","properties":{"order_id":"50314b8e","revenue":25.5,"currency":"USD"},"context":{"ip":"8.8.8.8","locale":"en-US","library":{"name":"analytics.js","version":"2.11.1"},"os":{"name":"Mac OS X","version":"14.1"}}}`},
	} {
		b.Run(p.preset, func(b *testing.B) {
			benchMap(b, mapping.Options{Preset: p.preset, SkipUserPropertiesSync: true}, p.data, false)
		})
	}
}

func ExampleMapper_Map() {
	m, err := mapping.New(mapping.Options{Preset: "mixpanel", SkipUserPropertiesSync: true})
	if err != nil {
		panic(err)
	}
	ev, err := m.Map(backfill.Record{
		Pos:  backfill.Position{Object: "s3://bucket/mixpanel-export/2024-05-01.json", Record: 0},
		Data: []byte(`{"event":"Signed Up","properties":{"time":1618716477,"distinct_id":"user-0001","$insert_id":"a1","$os":"iOS","plan":"pro","token":"t"}}`),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(ev.Raw))
	// Output: {"user_id":"user-0001","event_type":"Signed Up","time":1618716477000,"insert_id":"bfh-a4550d79ed717897359e5bf4f3907813","platform":"iOS","os_name":"iOS","$skip_user_properties_sync":true,"event_properties":{"$insert_id":"a1","plan":"pro"}}
}

// BenchmarkParseBaseline is one fastjson parse of the same event, the floor
// for BenchmarkMapFastPath.
func BenchmarkParseBaseline(b *testing.B) {
	var p fastjson.Parser
	data := []byte(benchEvent)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		v, err := p.ParseBytes(data)
		if err != nil || v.GetStringBytes("user_id") == nil {
			b.Fatal("parse")
		}
	}
}
