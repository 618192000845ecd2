package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/mapping"
)

var updateREADME = flag.Bool("update-readme", false, "rewrite the README's per-preset tables from `backfill presets show`")

// presetBlock matches one generated per-preset table of the README.
var presetBlock = regexp.MustCompile(`(?s)<!-- BEGIN backfill presets show ([a-z0-9-]+) -->\n(.*?)<!-- END backfill presets show ([a-z0-9-]+) -->\n`)

// TestREADMEPresetTables: the README's field-by-field table of every preset
// is exactly what `backfill presets show NAME` prints, so the code and the
// docs cannot disagree. Run with -update-readme to regenerate them.
func TestREADMEPresetTables(t *testing.T) {
	readme := filepath.Join("..", "..", "README.md")
	data, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var mismatch []string
	out := presetBlock.ReplaceAllStringFunc(string(data), func(block string) string {
		m := presetBlock.FindStringSubmatch(block)
		name, body, end := m[1], m[2], m[3]
		if name != end {
			t.Errorf("README block for %s ends as %s", name, end)
		}
		seen[name] = true
		res := runMain(t, "presets", "show", name)
		if res.code != 0 {
			t.Fatalf("presets show %s: exit %d\n%s", name, res.code, res)
		}
		if body != "\n"+res.stdout+"\n" {
			mismatch = append(mismatch, name)
		}
		return "<!-- BEGIN backfill presets show " + name + " -->\n\n" + res.stdout + "\n<!-- END backfill presets show " + name + " -->\n"
	})
	for _, name := range mapping.Presets() {
		if !seen[name] {
			t.Errorf("README has no generated table for preset %s", name)
		}
	}
	if *updateREADME {
		if err := os.WriteFile(readme, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if len(mismatch) > 0 {
		t.Errorf("README tables differ from `backfill presets show` for %s; run go test ./cmd/backfill -run TestREADMEPresetTables -update-readme",
			strings.Join(mismatch, ", "))
	}
}

func TestPresetsCommand(t *testing.T) {
	res := runMain(t, "presets")
	for _, name := range mapping.Presets() {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s+\S`).MatchString(res.stdout) {
			t.Errorf("presets lacks %s:\n%s", name, res.stdout)
		}
	}
	if res := runMain(t, "presets", "show", "--yaml", "segment"); res.code != 0 || !strings.Contains(res.stdout, "name: segment") {
		t.Errorf("presets show --yaml segment: exit %d\n%s", res.code, res)
	}
	if res := runMain(t, "presets", "show", "nope"); res.code != ExitUsage || !strings.Contains(res.stderr, "unknown preset") {
		t.Errorf("presets show nope: exit %d\n%s", res.code, res)
	}
}
