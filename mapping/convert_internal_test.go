package mapping

import "testing"

func TestTimeToMS(t *testing.T) {
	tests := []struct {
		name string
		in   outVal
		unit string
		want int64
		err  bool
	}{
		{"MSInt", numVal("1700000000000"), "ms", 1700000000000, false},
		{"MSString", strVal("1700000000000"), "", 1700000000000, false},
		{"MSFloatIntegral", numVal("1.7e12"), "ms", 1700000000000, false},
		{"MSFloatIntegralDot", numVal("1700000000000.0"), "ms", 1700000000000, false},
		{"MSFractional", numVal("1700000000000.5"), "ms", 0, true},
		{"Seconds", numVal("1700000000"), "s", 1700000000000, false},
		{"SecondsFraction", numVal("1700000000.1239"), "s", 1700000000123, false},
		{"Micros", strVal("1714566645123456"), "us", 1714566645123, false},
		{"Nanos", numVal("1714566645123456789"), "ns", 1714566645123, false},
		{"AutoSeconds", numVal("1618716477"), "auto", 1618716477000, false},
		{"AutoMillis", numVal("1618716477123"), "auto", 1618716477123, false},
		{"AutoMicros", numVal("1618716477123456"), "auto", 1618716477123, false},
		{"AutoNanos", numVal("1618716477123456789"), "auto", 1618716477123, false},
		{"RFC3339Z", strVal("2024-01-02T03:04:05Z"), "ms", 1704164645000, false},
		{"RFC3339Offset", strVal("2024-01-02T05:04:05.678+02:00"), "auto", 1704164645678, false},
		{"OffsetNoColon", strVal("2024-01-02T05:04:05.678+0200"), "auto", 1704164645678, false},
		{"OffsetHours", strVal("2024-01-02T05:04:05+02"), "auto", 1704164645000, false},
		{"ExportNoZone", strVal("2024-01-02 03:04:05.678000"), "ms", 1704164645678, false},
		{"NoZoneT", strVal("2024-01-02T03:04:05"), "ms", 1704164645000, false},
		{"BigQueryUTC", strVal("2024-01-02 03:04:05.678901 UTC"), "ms", 1704164645678, false},
		{"Lowercase", strVal("2024-01-02t03:04:05z"), "ms", 1704164645000, false},
		{"Minutes", strVal("2024-01-02T03:04Z"), "ms", 1704164640000, false},
		{"ISOUnitRejectsNumber", numVal("1700000000000"), "iso", 0, true},
		{"DateOnly", strVal("2024-01-02"), "ms", 0, true},
		{"Garbage", strVal("soon"), "auto", 0, true},
		{"Bool", boolVal(true), "ms", 0, true},
		{"Negative", numVal("-1000"), "s", -1000000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := timeToMS(tt.in, tt.unit)
			if (err != nil) != tt.err {
				t.Fatalf("err=%v, want error %v", err, tt.err)
			}
			if got != tt.want {
				t.Fatalf("timeToMS=%d, want %d", got, tt.want)
			}
		})
	}
}

func TestCasts(t *testing.T) {
	if n, err := toInt(strVal(" 42 ")); err != nil || n != 42 {
		t.Fatalf("toInt=%d %v", n, err)
	}
	if _, err := toInt(numVal("2.5")); err == nil {
		t.Fatal("2.5 is not an integer")
	}
	if v, err := toFloat(strVal("+1.5")); err != nil || v.s != "1.5" {
		t.Fatalf("toFloat=%+v %v", v, err)
	}
	if v, err := toFloat(strVal("9.990")); err != nil || v.s != "9.990" {
		t.Fatalf("toFloat keeps JSON text: %+v %v", v, err)
	}
	if _, err := toFloat(strVal("NaN")); err == nil {
		t.Fatal("NaN accepted")
	}
	for in, want := range map[string]bool{"TRUE": true, "0": false, "false": false, "1": true} {
		if b, err := toBool(strVal(in)); err != nil || b != want {
			t.Fatalf("toBool(%q)=%v %v", in, b, err)
		}
	}
	if _, err := toBool(strVal("yes")); err == nil {
		t.Fatal("yes accepted")
	}
	if s, err := toString(numVal("123")); err != nil || s != "123" {
		t.Fatalf("toString=%q %v", s, err)
	}
}

func TestParsePath(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{"a.b.c", []string{"a", "b", "c"}, false},
		{`a\.b.c`, []string{"a.b", "c"}, false},
		{`a\\.b`, []string{`a\`, "b"}, false},
		{"a..b", nil, true},
		{"", nil, true},
		{`a\x`, nil, true},
	}
	for _, tt := range tests {
		got, err := parsePath(tt.in)
		if (err != nil) != tt.err || len(got) != len(tt.want) {
			t.Fatalf("parsePath(%q)=%q %v", tt.in, got, err)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Fatalf("parsePath(%q)=%q", tt.in, got)
			}
		}
		if err == nil {
			if back, _ := parsePath(got.String()); len(back) != len(got) {
				t.Fatalf("String() does not round-trip: %q", got.String())
			}
		}
	}
}
