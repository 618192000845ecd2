package mapping_test

import (
	"strings"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/mapping"
)

// TestRawDoesNotPinTheInput guards the lanes' memory bound, which counts
// len(Event.Raw): an event shrunk by repairs (a long string truncated) must
// not keep a buffer the size of its input record.
func TestRawDoesNotPinTheInput(t *testing.T) {
	m, err := mapping.New(mapping.Options{})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 100_000)
	data := `{"event_type":"e","device_id":"device-12345","time":1704067200000,"insert_id":"i-1","event_properties":{"trace":"` + long + `"}}`
	ev, err := m.Map(backfill.Record{Data: []byte(data), Pos: backfill.Position{Object: "o", Record: 0}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Raw) > 2000 {
		t.Fatalf("the long string was not truncated: %d bytes", len(ev.Raw))
	}
	if cap(ev.Raw) > 2*len(ev.Raw) {
		t.Errorf("Raw of %d bytes keeps a buffer of %d bytes", len(ev.Raw), cap(ev.Raw))
	}
}

// With OwnRecords, an unchanged record's buffer becomes the event (no copy)
// when it has the headroom readers leave; without it, the record is never
// touched.
func TestOwnRecords(t *testing.T) {
	src := []byte(`{"event_type":"a","device_id":"device-1","time":1700000000000}`)
	for _, own := range []bool{false, true} {
		m, err := mapping.New(mapping.Options{SkipUserPropertiesSync: true, OwnRecords: own})
		if err != nil {
			t.Fatal(err)
		}
		data := backfill.CloneRecordData(src)
		rec := backfill.Record{Pos: backfill.Position{Object: "file:///x", Record: 3}, Data: data}
		ev, err := m.Map(rec)
		if err != nil {
			t.Fatal(err)
		}
		shared := &ev.Raw[0] == &data[0]
		if shared != own {
			t.Fatalf("OwnRecords=%v: event shares the record's buffer: %v", own, shared)
		}
		if !own && string(data) != string(src) {
			t.Fatalf("record modified without OwnRecords: %s", data)
		}
		want := `{"event_type":"a","device_id":"device-1","time":1700000000000,"insert_id":"` + mapping.DeriveInsertID(rec.Pos) + `","$skip_user_properties_sync":true}`
		if string(ev.Raw) != want {
			t.Fatalf("OwnRecords=%v: event %s, want %s", own, ev.Raw, want)
		}
	}
}
