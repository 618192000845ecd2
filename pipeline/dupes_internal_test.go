package pipeline

import (
	"fmt"
	"strings"
	"testing"

	"github.com/backfillhq/backfill"
)

func TestDupesCheck(t *testing.T) {
	d := newDupes(16)
	ev := func(dev, user, id, raw string) *backfill.Event {
		return &backfill.Event{DeviceID: dev, UserID: user, InsertID: id, Raw: []byte(raw)}
	}
	tests := []struct {
		name string
		ev   *backfill.Event
		want bool
	}{
		{"First", ev("device-1", "", "x", `{"a":1}`), false},
		{"Identical", ev("device-1", "", "x", `{"a":1}`), false},
		{"Different", ev("device-1", "", "x", `{"a":2}`), true},
		{"OtherDevice", ev("device-2", "", "x", `{"a":2}`), false},
		{"UserScope", ev("", "user-1", "x", `{"a":3}`), false},
		{"UserScopeDifferent", ev("", "user-1", "x", `{"a":4}`), true},
		{"PositionDerived", ev("device-1", "", "bf-0123", `{"a":5}`), false},
		{"PositionDerivedAgain", ev("device-1", "", "bf-0123", `{"a":6}`), false},
		{"NoInsertID", ev("device-1", "", "", `{"a":7}`), false},
	}
	for _, tt := range tests {
		if got := d.check(tt.ev); got != tt.want {
			t.Errorf("%s: check=%v, want %v", tt.name, got, tt.want)
		}
	}
	// A long event that differs near its start or end, or in length, is
	// told apart from the first one of its key.
	long := `{"event_type":"e","p":"` + strings.Repeat("x", 3000) + `"}`
	if d.check(ev("device-9", "", "z", long)) {
		t.Error("first long event reported")
	}
	if !d.check(ev("device-9", "", "z", strings.Replace(long, `"e"`, `"f"`, 1))) {
		t.Error("long events differing in event_type not reported")
	}
	if !d.check(ev("device-9", "", "z", long+" ")) {
		t.Error("long events differing in length not reported")
	}
	// Bounded: many more keys than slots leave the table its size.
	for i := 0; i < 10000; i++ {
		d.check(ev(fmt.Sprintf("device-%d", i), "", "y", `{}`))
	}
	if len(d.slots) != 32 {
		t.Fatalf("table grew to %d words", len(d.slots))
	}
}

func BenchmarkDupesCheck(b *testing.B) {
	d := newDupes(0)
	raw := []byte(`{"user_id":"user-000123","device_id":"device-000123","event_type":"Page Viewed","time":1700000000000,"insert_id":"6f1c2a9e-3b7d-4c1e-9a55-0d2f8e7b6c41","event_properties":{"url":"https://example.com/pricing","plan":"pro","count":3},"$skip_user_properties_sync":true}`)
	evs := make([]backfill.Event, 1024)
	for i := range evs {
		evs[i] = backfill.Event{DeviceID: fmt.Sprintf("device-%06d", i), InsertID: fmt.Sprintf("6f1c2a9e-3b7d-4c1e-9a55-%012d", i), Raw: raw}
	}
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.check(&evs[i&1023])
	}
}

// BenchmarkDupesHashOnly is the floor of BenchmarkDupesCheck: hashing the
// event's bytes, without the table.
func BenchmarkDupesHashOnly(b *testing.B) {
	d := newDupes(0)
	raw := []byte(`{"user_id":"user-000123","device_id":"device-000123","event_type":"Page Viewed","time":1700000000000,"insert_id":"6f1c2a9e-3b7d-4c1e-9a55-0d2f8e7b6c41","event_properties":{"url":"https://example.com/pricing","plan":"pro","count":3},"$skip_user_properties_sync":true}`)
	b.SetBytes(int64(len(raw)))
	var x uint64
	for i := 0; i < b.N; i++ {
		x ^= maphashBytes(d, raw)
	}
	_ = x
}
