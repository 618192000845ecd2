package validate_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill/validate"
	"github.com/valyala/fastjson"
)

func now() time.Time { return time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC) }

func newV(t *testing.T, opt validate.Options) *validate.Validator {
	t.Helper()
	if opt.Now == nil {
		opt.Now = now
	}
	v, err := validate.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func nested(depth int) string {
	return strings.Repeat(`{"n":`, depth) + "1" + strings.Repeat("}", depth)
}

func TestEvent(t *testing.T) {
	long := strings.Repeat("ü", 1030)
	tests := []struct {
		name   string
		in     string
		want   string // repaired output; "" = unchanged
		code   string
		reason string
	}{
		{"OK", `{"user_id":"user-1","event_type":"e","time":1700000000000}`, "", "", ""},
		{"DeviceOnly", `{"device_id":"dev-1","event_type":"e","time":1700000000000}`, "", "", ""},
		{"MissingEventType", `{"user_id":"user-1","time":1700000000000}`, "", validate.CodeMissingEventType, "missing event_type"},
		{"BlankEventType", `{"user_id":"user-1","event_type":"  ","time":1700000000000}`, "", validate.CodeMissingEventType, "empty event_type"},
		{"NumericEventType", `{"user_id":"user-1","event_type":5,"time":1700000000000}`, "", validate.CodeMissingEventType, "invalid event_type: 5 is not a string"},
		{"Reserved", `{"user_id":"user-1","event_type":"[Amplitude] Start Session","time":1700000000000}`, "", validate.CodeReservedEventType, `reserved event_type "[Amplitude] Start Session"`},
		{"NoIDs", `{"event_type":"e","time":1700000000000}`, "", validate.CodeMissingID, "missing user_id and device_id"},
		{"ShortUser", `{"user_id":"abc","event_type":"e","time":1700000000000}`, "", validate.CodeIDTooShort, `user_id "abc" is shorter than the minimum id length (3 < 5); Amplitude rejects it: lower --min-id-length to send it`},
		{"ShortBoth", `{"user_id":"abc","device_id":"de","event_type":"e","time":1700000000000}`, "", validate.CodeIDTooShort, `user_id "abc" is shorter than the minimum id length (3 < 5); Amplitude rejects it: lower --min-id-length to send it`},
		{"ShortDeviceValidUser", `{"user_id":"user-1","device_id":"de","event_type":"e","time":1700000000000}`, "", validate.CodeIDTooShort, `device_id "de" is shorter than the minimum id length (2 < 5); Amplitude rejects it: lower --min-id-length to send it`},
		{"BlockedDevice", `{"device_id":" Undefined ","event_type":"e","time":1700000000000}`, "", validate.CodeMissingID, `no user_id and device_id " Undefined " is blocked`},
		{"BlockedZeroUUID", `{"device_id":"00000000-0000-0000-0000-000000000000","event_type":"e","time":1700000000000}`, "", validate.CodeMissingID, `no user_id and device_id "00000000-0000-0000-0000-000000000000" is blocked`},
		{"ShortUserValidDevice", `{"user_id":"abc","device_id":"dev-1","event_type":"e","time":1700000000000}`, "", validate.CodeIDTooShort, `user_id "abc" is shorter than the minimum id length (3 < 5); Amplitude rejects it: lower --min-id-length to send it`},
		{"StripEmptyUser", `{"user_id":"","device_id":"dev-1","event_type":"e","time":1700000000000}`, `{"device_id":"dev-1","event_type":"e","time":1700000000000}`, "", ""},
		{"StripBlockedUser", `{"user_id":"NULL","device_id":"dev-1","event_type":"e","time":1700000000000}`, `{"device_id":"dev-1","event_type":"e","time":1700000000000}`, "", ""},
		{"RuneLength", `{"user_id":"日本語語語","event_type":"e","time":1700000000000}`, "", "", ""},
		{"NonStringID", `{"user_id":12345,"event_type":"e","time":1700000000000}`, "", validate.CodeInvalidField, "invalid user_id: 12345 is not a string"},
		{"LongID", `{"user_id":"` + long + `","event_type":"e","time":1700000000000}`, "", validate.CodeIDTooLong, "user_id longer than 1024 characters"},
		{"LongInsertID", `{"user_id":"user-1","insert_id":"` + long + `","event_type":"e","time":1700000000000}`, "", validate.CodeIDTooLong, "insert_id longer than 1024 characters"},
		{"MissingTime", `{"user_id":"user-1","event_type":"e"}`, "", validate.CodeMissingTime, "missing time"},
		{"StringTime", `{"user_id":"user-1","event_type":"e","time":"2024-01-01"}`, "", validate.CodeInvalidTime, `invalid time: "2024-01-01" is not integer milliseconds`},
		{"FloatTime", `{"user_id":"user-1","event_type":"e","time":1.7e12}`, "", validate.CodeInvalidTime, "invalid time: 1.7e12 is not integer milliseconds"},
		{"NegativeTime", `{"user_id":"user-1","event_type":"e","time":-5}`, "", validate.CodeInvalidTime, "invalid time: -5 is negative"},
		{"SecondsTime", `{"user_id":"user-1","event_type":"e","time":1700000000}`, "", validate.CodeInvalidTime, "invalid time: 1700000000 is before 2000-01-01T00:00:00Z (seconds instead of milliseconds?)"},
		{"FutureTime", `{"user_id":"user-1","event_type":"e","time":1800000000000}`, "", validate.CodeInvalidTime, "invalid time: 1800000000000 is more than 366 days in the future (microseconds instead of milliseconds?)"},
		{"BadSession", `{"user_id":"user-1","event_type":"e","time":1700000000000,"session_id":"1"}`, "", validate.CodeInvalidField, `invalid session_id: "1" is not an integer`},
		{"FloatQuantity", `{"user_id":"user-1","event_type":"e","time":1700000000000,"quantity":1.5}`, "", validate.CodeInvalidField, "invalid quantity: 1.5 is not an integer"},
		{"BadProps", `{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":[1]}`, "", validate.CodeInvalidField, "invalid event_properties: [1] is not an object"},
		{"BadSkip", `{"user_id":"user-1","event_type":"e","time":1700000000000,"$skip_user_properties_sync":"yes"}`, "", validate.CodeInvalidField, `invalid $skip_user_properties_sync: "yes" is not a boolean`},
		{"NullOptional", `{"user_id":"user-1","event_type":"e","time":1700000000000,"price":null}`, "", "", ""},
		{"Depth40", `{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":` + nested(40) + `}`, "", "", ""},
		{"Depth41", `{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":` + nested(41) + `}`, "", validate.CodeTooDeep, "event_properties" + strings.Repeat(".n", 40) + " is nested deeper than 40 levels"},
		{"Truncate", `{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":{"a":["` + long + `"]}}`,
			`{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":{"a":["` + strings.Repeat("ü", 1024) + `"]}}`, "", ""},
		{"Unicode1024", `{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":{"a":"` + strings.Repeat("ü", 1024) + `"}}`, "", "", ""},
		{"BadNumber", `{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":{"a":1.2.3}}`, "", validate.CodeInvalidJSON, "invalid JSON"},
		{"HugeNumber", `{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":{"a":1e400}}`, "", validate.CodeInvalidField, "invalid event_properties.a: 1e400 is out of float64 range"},
		{"HugeNegativeInArray", `{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":{"a":[-1.8e308]}}`, "", validate.CodeInvalidField, "invalid event_properties.a.0: -1.8e308 is out of float64 range"},
		{"HugePrice", `{"user_id":"user-1","event_type":"e","time":1700000000000,"price":1e400}`, "", validate.CodeInvalidField, "invalid price: 1e400 is out of float64 range"},
		{"TinyNumberKept", `{"user_id":"user-1","event_type":"e","time":1700000000000,"event_properties":{"a":1e-400}}`, "", "", ""},
		{"NotObject", `[1]`, "", validate.CodeInvalidJSON, "event is not a JSON object"},
		{"UnknownKeysKept", `{"user_id":"user-1","event_type":"e","time":1700000000000,"custom":{"x":1}}`, "", "", ""},
	}
	v := newV(t, validate.Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := v.Event([]byte(tt.in))
			if tt.code != "" {
				var ve *validate.Error
				if !errors.As(err, &ve) || ve.Code != tt.code || !strings.HasPrefix(ve.Reason, tt.reason) {
					t.Fatalf("err=%#v, want %s %q", err, tt.code, tt.reason)
				}
				if !errors.Is(err, validate.ErrInvalid) {
					t.Fatal("not ErrInvalid")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == "" {
				want = tt.in
			}
			if string(out) != want {
				t.Fatalf("out=%.300s\nwant %.300s", out, want)
			}
		})
	}
}

func TestTooManyKeys(t *testing.T) {
	v := newV(t, validate.Options{MaxKeys: 4})
	_, _, err := v.Event([]byte(`{"user_id":"user-1","event_type":"e","time":1700000000000,"user_properties":{"a":1,"b":2,"c":3,"d":4,"e":5}}`))
	var ve *validate.Error
	if !errors.As(err, &ve) || ve.Code != validate.CodeTooManyKeys || ve.Reason != "user_properties has 5 keys (max 4)" {
		t.Fatalf("err=%v", err)
	}
}

func TestOptions(t *testing.T) {
	v := newV(t, validate.Options{MinIDLength: 2, AllowMissingTime: true})
	res, err := v.Check(parse(t, `{"user_id":"ab","event_type":"e"}`))
	if err != nil || res.UserID != "ab" || res.HasTime {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	if _, err := validate.New(validate.Options{MaxDepth: -1}); err == nil {
		t.Fatal("negative limit accepted")
	}
	if got := newV(t, validate.Options{}).Options(); got.MinIDLength != validate.DefaultMinIDLength || got.MaxStringLength != 1024 || got.MaxDepth != 40 {
		t.Fatalf("defaults %+v", got)
	}
}

func TestCheckResult(t *testing.T) {
	v := newV(t, validate.Options{})
	res, err := v.Check(parse(t, `{"user_id":"none","device_id":"dev-12","event_type":"e","time":1700000000000,"insert_id":"i-1","$skip_user_properties_sync":false}`))
	if err != nil {
		t.Fatal(err)
	}
	want := validate.Result{EventType: "e", DeviceID: "dev-12", InsertID: "i-1", Time: 1700000000000, HasTime: true, HasSkipSync: true, StripUserID: true, Typed: true, BlockedIDs: 1}
	if res != want {
		t.Fatalf("res=%+v\nwant %+v", res, want)
	}
	if !res.Changed() || res.StrippedIDs() != 1 {
		t.Fatal("repair not reported")
	}
}

func TestCheckTyped(t *testing.T) {
	v := newV(t, validate.Options{})
	for in, typed := range map[string]bool{
		`{"user_id":"user-1","event_type":"e","time":1700000000000,"price":1.5}`:  true,
		`{"user_id":"user-1","event_type":"e","time":"1700000000000"}`:            false,
		`{"user_id":"user-1","event_type":"e","time":1700000000000,"x":1}`:        false,
		`{"user_id":"user-1","event_type":"e","time":1700000000000,"price":null}`: false,
		`{"user_id":"user-1","time":1700000000000,"$insert_id":"x"}`:              false,
	} {
		res, err := v.CheckTyped(parse(t, in))
		if res.Typed != typed || (!typed && err != nil) {
			t.Errorf("CheckTyped(%s)=%+v %v", in, res, err)
		}
	}
	// Typed but invalid: the error is reported.
	if _, err := v.CheckTyped(parse(t, `{"user_id":"user-1","time":1700000000000}`)); err == nil {
		t.Error("missing event_type not reported")
	}
}

func parse(t *testing.T, s string) *fastjson.Value {
	t.Helper()
	var p fastjson.Parser
	v, err := p.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAppendString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `"plain"`},
		{"q\"b\\", `"q\"b\\"`},
		{"\n\r\t\x01\x1f", `"\n\r\t\u0001\u001f"`},
		{"\x7f é 😀 \u2028", "\"\x7f é 😀 \u2028\""},
		{"bad\xffutf8", `"bad\ufffdutf8"`},
	}
	for _, tt := range tests {
		got := string(validate.AppendString(nil, tt.in))
		if got != tt.want {
			t.Errorf("AppendString(%q)=%s, want %s", tt.in, got, tt.want)
		}
		if err := fastjson.Validate(got); err != nil {
			t.Errorf("AppendString(%q) is not valid JSON: %v", tt.in, err)
		}
	}
}

func TestNumbers(t *testing.T) {
	for in, want := range map[string]bool{"0": true, "-1.5e+3": true, "1E9": true, "01": false, "1.": false, ".5": false, "NaN": false, "1.2.3": false, "-": false, "+1": false, "1e400": false, "-1e309": false, "1e-400": true, "1.7976931348623157e308": true} {
		if got := validate.ValidNumber([]byte(in)); got != want {
			t.Errorf("ValidNumber(%q)=%v", in, got)
		}
	}
	for in, want := range map[string]bool{"0": true, "-12": true, "1.0": false, "1e3": false, "007": false} {
		if got := validate.IsInteger([]byte(in)); got != want {
			t.Errorf("IsInteger(%q)=%v", in, got)
		}
	}
	// AppendValue refuses numbers fastjson's parser lets through.
	var p fastjson.Parser
	v, err := p.Parse(`{"a":1.2.3}`)
	if err != nil {
		t.Skip("parser rejects 1.2.3")
	}
	if _, err := validate.AppendValue(nil, v); err == nil {
		t.Fatal("invalid number encoded")
	}
}

func TestLists(t *testing.T) {
	if !validate.IsBlockedID("N/A") || !validate.IsBlockedID(`""`) || validate.IsBlockedID("user-1") {
		t.Fatal("blocked list")
	}
	if validate.FieldKind("time") != validate.KindInt || validate.FieldKind("nope") != validate.KindUnknown {
		t.Fatal("field kinds")
	}
	if len(validate.Fields()) < 40 {
		t.Fatal("field table too short")
	}
}
