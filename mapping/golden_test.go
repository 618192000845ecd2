package mapping_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/mapping"
	"github.com/backfillhq/backfill/validate"
)

var update = flag.Bool("update", false, "rewrite fixtures/presets/*/golden.jsonl")

// fixedNow is the clock of every test, so the future-time bound is stable.
func fixedNow() time.Time { return time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC) }

const fixturesDir = "../fixtures/presets"

func readLines(t *testing.T, file string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	return lines
}

type goldenErr struct {
	Line     int    `json:"line"`
	Code     string `json:"code"`
	Filtered bool   `json:"filtered,omitempty"`
	Reason   string `json:"reason"`
}

// TestGolden maps every preset's fixture and compares the events (and
// rejections) with golden.jsonl byte for byte. Run with -update to rewrite.
func TestGolden(t *testing.T) {
	for _, preset := range mapping.Presets() {
		t.Run(preset, func(t *testing.T) {
			dir := filepath.Join(fixturesDir, preset)
			lines := readLines(t, filepath.Join(dir, "input.jsonl"))
			if len(lines) == 0 {
				t.Fatalf("no fixture lines for preset %s", preset)
			}
			m, err := mapping.New(mapping.Options{Preset: preset, SkipUserPropertiesSync: true, Now: fixedNow})
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			for i, line := range lines {
				rec := backfill.Record{
					Pos:  backfill.Position{Object: "file:///fixtures/presets/" + preset + "/input.jsonl", Record: int64(i), Line: int64(i + 1)},
					Data: line,
				}
				ev, err := m.Map(rec)
				if err != nil {
					var me *mapping.Error
					var re *backfill.RecordError
					if !errors.As(err, &me) || !errors.As(err, &re) {
						t.Fatalf("line %d: error %v is not a *mapping.Error wrapping a *backfill.RecordError", i+1, err)
					}
					if re.Pos != rec.Pos || len(re.Raw) == 0 {
						t.Errorf("line %d: record error pos %v raw %q", i+1, re.Pos, re.Raw)
					}
					b, _ := json.Marshal(goldenErr{Line: i + 1, Code: me.Code, Filtered: errors.Is(err, mapping.ErrFiltered), Reason: re.Reason})
					got.Write(b)
					got.WriteByte('\n')
					continue
				}
				checkEvent(t, i+1, rec, ev)
				fmt.Fprintf(&got, "{\"line\":%d,\"event\":%s}\n", i+1, ev.Raw)
			}
			golden := filepath.Join(dir, "golden.jsonl")
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./mapping -run TestGolden -update)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				gl, wl := strings.Split(got.String(), "\n"), strings.Split(string(want), "\n")
				for i := 0; i < len(gl) || i < len(wl); i++ {
					var g, w string
					if i < len(gl) {
						g = gl[i]
					}
					if i < len(wl) {
						w = wl[i]
					}
					if g != w {
						t.Errorf("golden line %d:\n got %s\nwant %s", i+1, g, w)
					}
				}
			}
		})
	}
}

// checkEvent asserts that the extracted keys agree with Raw and that Raw
// passes validation on its own.
func checkEvent(t *testing.T, line int, rec backfill.Record, ev backfill.Event) {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal(ev.Raw, &obj); err != nil {
		t.Fatalf("line %d: Raw is not JSON: %v: %s", line, err, ev.Raw)
	}
	str := func(k string) string { s, _ := obj[k].(string); return s }
	if got := str("user_id"); got != ev.UserID {
		t.Errorf("line %d: UserID=%q, Raw has %q", line, ev.UserID, got)
	}
	if got := str("device_id"); got != ev.DeviceID {
		t.Errorf("line %d: DeviceID=%q, Raw has %q", line, ev.DeviceID, got)
	}
	if got := str("insert_id"); got != ev.InsertID || got == "" {
		t.Errorf("line %d: InsertID=%q, Raw has %q", line, ev.InsertID, got)
	}
	if got := str("event_type"); got != ev.EventType {
		t.Errorf("line %d: EventType=%q, Raw has %q", line, ev.EventType, got)
	}
	if tm, _ := obj["time"].(float64); int64(tm) != ev.Time {
		t.Errorf("line %d: Time=%d, Raw has %v", line, ev.Time, obj["time"])
	}
	if _, ok := obj["$skip_user_properties_sync"]; ok == ev.Profile {
		// Profiles keep Amplitude's user-property sync; events skip it.
		t.Errorf("line %d: $skip_user_properties_sync present=%v for Profile=%v", line, ok, ev.Profile)
	}
	if ev.Pos != rec.Pos {
		t.Errorf("line %d: Pos=%v, want %v", line, ev.Pos, rec.Pos)
	}
	v, _ := validate.New(validate.Options{Now: fixedNow})
	out, res, err := v.Event(ev.Raw)
	if err != nil || res.Changed() || !bytes.Equal(out, ev.Raw) {
		t.Errorf("line %d: Raw does not re-validate cleanly: %v %+v", line, err, res)
	}
}

// TestGoldenFixturesExist makes sure no preset ships without a fixture.
func TestGoldenFixturesExist(t *testing.T) {
	for _, p := range mapping.Presets() {
		for _, f := range []string{"input.jsonl", "golden.jsonl"} {
			if _, err := os.Stat(filepath.Join(fixturesDir, p, f)); err != nil {
				t.Errorf("preset %s: %v", p, err)
			}
		}
	}
}
