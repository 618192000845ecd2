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
