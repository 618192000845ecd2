package validate

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// slowTyped is what Scan stands in for: strict validation, a parse and
// CheckTyped, with ok true only for an event that goes out unchanged.
func slowTyped(v *Validator, data []byte) (Result, bool) {
	if !utf8.Valid(data) || fastjson.ValidateBytes(data) != nil {
		return Result{}, false
	}
	var p fastjson.Parser
	root, err := p.ParseBytes(data)
	if err != nil || root.Type() != fastjson.TypeObject {
		return Result{}, false
	}
	res, err := v.CheckTyped(root)
	if err != nil || !res.Typed || res.Changed() {
		return Result{}, false
	}
	return res, true
}

func scanValidator(t testing.TB) *Validator {
	v, err := New(Options{Now: func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// typical events Scan must take (the slow path takes them too).
var scanTypical = []string{
	`{"user_id":"user-00042","device_id":"0b8f3c2e-6a51-4c3b-9d7e-2f1a4b5c6d7e","event_type":"page_view","time":1700000000000,"insert_id":"ins-1","session_id":1700000000000,"platform":"Web","os_name":"Chrome","country":"France","city":"Paris","event_properties":{"path":"/checkout","referrer":"https://example.com/a?b=c","amount":12.5,"items":[{"sku":"A-1","qty":2},{"sku":"B-2","qty":1}],"experiment":{"id":"exp-7","variant":"b"}},"user_properties":{"plan":"pro","age":31,"tags":["x","y"],"vip":true,"note":null}}`,
	`{"device_id":"device-1","event_type":"e","time":1700000000000}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"$skip_user_properties_sync":false}`,
	`{ "user_id" : "user-1" , "event_type" : "café ouvert" , "time" : 1700000000000 , "event_properties" : { "k" : "v\n\"q\" caf\u00e9" , "e" : [ ] , "o" : { } } }`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"price":-1.5e3,"quantity":-0,"revenue":0.25,"location_lat":48.85,"event_properties":{"unicode":"日本語 ✓","n":[1,-2,3.5e-7,0]}}`,
}

// events Scan must leave to Check: invalid JSON, repairs, rejections,
// undocumented keys, escapes where Scan extracts, and so on.
var scanLeave = []string{
	``, `{}`, `[]`, `{"user_id":"user-1","event_type":"e","time":1700000000000`,
	` {"user_id":"user-1","event_type":"e","time":1700000000000}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000} `,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000}}`,
	`{"user_id":"user-1","event_type":"e","time":01700000000000}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000.0}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000}`,
	`{"user_id":"user-1","event_type":"e","time":99999999999999999999}`,
	`{"user_id":"user-1","event_type":"e"}`,
	`{"user_id":"user-1","time":1700000000000}`,
	`{"user_id":"user-1","event_type":" ","time":1700000000000}`,
	`{"user_id":"user-1","event_type":"[Amplitude] Revenue","time":1700000000000}`,
	`{"user_id":"abc","event_type":"e","time":1700000000000}`,
	`{"user_id":"user-1","device_id":"abc","event_type":"e","time":1700000000000}`,
	`{"user_id":"Unknown","device_id":"device-1","event_type":"e","time":1700000000000}`,
	`{"user_id":null,"device_id":"device-1","event_type":"e","time":1700000000000}`,
	`{"user_id":"us\u0065r-1","event_type":"e","time":1700000000000}`,
	`{"user_id":"usér-1","event_type":"e","time":1700000000000}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"user_id":"user-2"}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"custom":1}`,
	`{"user_\u0069d":"user-1","event_type":"e","time":1700000000000}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"session_id":1.5}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"price":"1"}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":[]}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":{"a":01}}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":{"a":"\x01"}}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":{"a":"\q"}}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":{"a":"\u12"}}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":{"a":"` + "\xff" + `"}}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":{"a":tru}}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":{"a" 1}}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":{"a":[1,]}}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":{"a":"` + strings.Repeat("x", 1025) + `"}}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":` + strings.Repeat(`{"a":`, 41) + `1` + strings.Repeat(`}`, 41) + `}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"$skip_user_properties_sync":1}`,
	`{"user_id":"user-1","event_type":"e","time":1700000000000,"plan":null}`,
}

func TestScanAgreesWithCheck(t *testing.T) {
	v := scanValidator(t)
	for _, in := range scanTypical {
		got, ok := v.Scan([]byte(in))
		want, wantOK := slowTyped(v, []byte(in))
		if !wantOK {
			t.Fatalf("test data: the slow path does not take %s", in)
		}
		if !ok {
			t.Errorf("Scan left to Check: %s", in)
			continue
		}
		if got != want {
			t.Errorf("Scan(%s)\n = %+v\nwant %+v", in, got, want)
		}
	}
	for _, in := range scanLeave {
		if res, ok := v.Scan([]byte(in)); ok {
			t.Errorf("Scan took %q: %+v", in, res)
		}
	}
}

func TestScanDepthAtLimit(t *testing.T) {
	v := scanValidator(t)
	// event_properties at depth 1 and 39 objects below it: depth 40, allowed.
	in := `{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40) + `}`
	if _, ok := slowTyped(v, []byte(in)); !ok {
		t.Fatal("the slow path rejects the limit depth")
	}
	if _, ok := v.Scan([]byte(in)); !ok {
		t.Error("Scan left an event at the depth limit to Check")
	}
}

func TestScanAllocs(t *testing.T) {
	v := scanValidator(t)
	in := []byte(`{"device_id":"0b8f3c2e-6a51-4c3b-9d7e-2f1a4b5c6d7e","event_type":"page_view","time":1700000000000,"event_properties":{"a":[1,2,{"b":"c"}]}}`)
	// The Result's strings: device_id and event_type.
	if n := testing.AllocsPerRun(100, func() { v.Scan(in) }); n > 2 {
		t.Errorf("Scan allocates %v times per event, want <= 2", n)
	}
}

// FuzzScan checks Scan against the slow path: whatever Scan takes, the slow
// path takes too, with the same Result.
func FuzzScan(f *testing.F) {
	for _, s := range scanTypical {
		f.Add([]byte(s))
	}
	for _, s := range scanLeave {
		f.Add([]byte(s))
	}
	v := scanValidator(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := v.Scan(data)
		if !ok {
			return
		}
		want, wantOK := slowTyped(v, data)
		if !wantOK {
			t.Fatalf("Scan took %q, the slow path does not", data)
		}
		if got != want {
			t.Fatalf("Scan(%q)\n = %+v\nwant %+v", data, got, want)
		}
	})
}

func BenchmarkScan(b *testing.B) {
	v := scanValidator(b)
	in := []byte(scanTypical[0])
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := v.Scan(in); !ok {
			b.Fatal("not taken")
		}
	}
}

func BenchmarkScanSlowPath(b *testing.B) {
	v := scanValidator(b)
	in := []byte(scanTypical[0])
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := slowTyped(v, in); !ok {
			b.Fatal("not taken")
		}
	}
}
