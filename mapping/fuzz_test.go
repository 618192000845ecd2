package mapping_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/mapping"
	"github.com/valyala/fastjson"
)

// FuzzMap checks, for every preset, that Map never panics and that every
// event it returns is valid JSON that passes validation unchanged.
func FuzzMap(f *testing.F) {
	ents, err := os.ReadDir(fixturesDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(fixturesDir, e.Name(), "input.jsonl"))
		if err != nil {
			continue
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(line) > 0 && len(line) < 4096 {
				f.Add(line)
			}
		}
	}
	var mappers []*mapping.Mapper
	for _, p := range mapping.Presets() {
		m, err := mapping.New(mapping.Options{Preset: p, SkipUserPropertiesSync: true, Now: fixedNow})
		if err != nil {
			f.Fatal(err)
		}
		mappers = append(mappers, m)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range mappers {
			ev, err := m.Map(backfill.Record{Pos: backfill.Position{Object: "file:///fuzz"}, Data: data})
			if err != nil {
				continue
			}
			if err := fastjson.ValidateBytes(ev.Raw); err != nil {
				t.Fatalf("%s: invalid Raw %q: %v", m.Name(), ev.Raw, err)
			}
			out, res, err := mustValidator(t).Event(ev.Raw)
			if err != nil || res.Changed() || !bytes.Equal(out, ev.Raw) {
				t.Fatalf("%s: Raw %q does not re-validate: %v %+v", m.Name(), ev.Raw, err, res)
			}
		}
	})
}
