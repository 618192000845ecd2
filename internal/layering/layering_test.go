package layering

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/backfillhq/backfill"

// rule forbids pkg (a module-relative path, "" for the root) to depend on
// any of deps (module-relative paths, transitively over `go list -deps`) or
// to import any of imports directly (standard or third-party paths: the
// cloud SDKs behind reader bring net/http in transitively, which is fine;
// reader's own code must not speak HTTP).
type rule struct {
	pkg     string
	deps    []string
	imports []string
	allow   []string // module packages exempt from deps "*"
	why     string
}

var rules = []rule{
	{pkg: "", deps: []string{"*"}, imports: []string{"net/http"}, why: "the root package is vocabulary: it imports no stage, no HTTP"},
	{pkg: "reader", deps: []string{"uploader", "chunker", "pipeline", "checkpoint", "mapping", "emulator", "job", "deadletter"}, imports: []string{"net/http"}, why: "reader knows nothing of HTTP or the target API"},
	{pkg: "uploader", deps: []string{"reader", "mapping", "validate", "checkpoint", "chunker", "deadletter", "pipeline", "job", "emulator"}, imports: []string{"github.com/apache/arrow-go/v18/parquet", "encoding/csv", "gocloud.dev/blob"}, why: "uploader knows nothing of formats, storage or checkpoints"},
	{pkg: "chunker", deps: []string{"uploader", "reader", "checkpoint", "pipeline", "mapping", "job"}, imports: []string{"net/http"}, why: "chunker knows neither where events come from nor how they are sent"},
	{pkg: "checkpoint", deps: []string{"uploader", "reader", "chunker", "mapping", "pipeline", "job", "deadletter"}, imports: []string{"net/http"}, why: "checkpoint knows nothing of formats, HTTP or chunking"},
	{pkg: "emulator", deps: []string{"uploader", "pipeline", "chunker", "job", "reader", "mapping", "checkpoint"}, why: "the emulator is the wire contract: it never imports our client"},
	{pkg: "pipeline", deps: []string{"mapping", "reader", "job", "emulator", "validate"}, imports: []string{"net/http"}, why: "pipeline wires stages through interfaces; the mapper's codes and the readers' formats are not its business"},
	{pkg: "mapping", deps: []string{"uploader", "reader", "chunker", "pipeline", "checkpoint", "job", "emulator"}, imports: []string{"net/http"}, why: "mapping turns records into events and nothing else"},
	{pkg: "validate", deps: []string{"*"}, imports: []string{"net/http"}, allow: []string{"", "amplitude"}, why: "validate is Amplitude's event rules alone"},
	{pkg: "deadletter", deps: []string{"*"}, imports: []string{"net/http"}, allow: []string{""}, why: "the dead-letter format depends on the vocabulary only"},
	{pkg: "amplitude", deps: []string{"*"}, imports: []string{"net/http"}, allow: []string{""}, why: "Amplitude's limits are a leaf every stage may read"},
	{pkg: "ceiling", deps: []string{"*"}, imports: []string{"net/http"}, allow: []string{"", "amplitude"}, why: "the project ceilings are counting and a clock: the uploader asks them, they know no HTTP"},
	{pkg: "job", deps: []string{"emulator", "cmd/backfill"}, why: "job runs against any endpoint; the emulator is for tests and the demo command"},
}

type listed struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// TestLayering fails when a package depends on one it must not know about.
func TestLayering(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the layering test needs the go command: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-json=ImportPath,Imports,Deps", mod+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]listed{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	for _, v := range violations(pkgs, rules) {
		t.Error(v)
	}
}

// violations checks pkgs (by import path) against rules.
func violations(pkgs map[string]listed, rules []rule) []string {
	var out []string
	for _, r := range rules {
		path := mod
		if r.pkg != "" {
			path += "/" + r.pkg
		}
		p, ok := pkgs[path]
		if !ok {
			out = append(out, fmt.Sprintf("package %s is gone: update the layering rules", path))
			continue
		}
		for _, d := range p.Deps {
			rel, inMod := strings.CutPrefix(d, mod)
			if !inMod || rel != "" && rel[0] != '/' {
				continue
			}
			rel = strings.TrimPrefix(rel, "/")
			if slices.Contains(r.allow, rel) {
				continue
			}
			if slices.Contains(r.deps, rel) || slices.Contains(r.deps, "*") && !strings.HasPrefix(rel, "internal/") {
				out = append(out, fmt.Sprintf("%s depends on %s: %s", path, d, r.why))
			}
		}
		for _, imp := range p.Imports {
			for _, bad := range r.imports {
				if imp == bad || strings.HasPrefix(imp, bad+"/") {
					out = append(out, fmt.Sprintf("%s imports %s: %s", path, imp, r.why))
				}
			}
		}
	}
	return out
}

// TestViolations checks that the checker catches what it must, so that
// TestLayering cannot pass by accident.
func TestViolations(t *testing.T) {
	pkgs := map[string]listed{
		mod:               {ImportPath: mod, Deps: []string{"fmt"}},
		mod + "/reader":   {ImportPath: mod + "/reader", Imports: []string{"net/http/httputil"}, Deps: []string{mod, mod + "/uploader", mod + "/internal/jsonstr"}},
		mod + "/emulator": {ImportPath: mod + "/emulator", Deps: []string{mod + "/uploaderx"}},
		mod + "/validate": {ImportPath: mod + "/validate", Deps: []string{mod + "/internal/jsonstr", mod}},
	}
	rs := []rule{
		{pkg: "", deps: []string{"*"}},
		{pkg: "reader", deps: []string{"uploader"}, imports: []string{"net/http"}},
		{pkg: "emulator", deps: []string{"uploader"}},
		{pkg: "validate", deps: []string{"*"}},
		{pkg: "gone"},
	}
	got := strings.Join(violations(pkgs, rs), "\n")
	for _, want := range []string{
		"reader depends on " + mod + "/uploader",
		"reader imports net/http/httputil",
		"validate depends on " + mod + ":",
		"/gone is gone",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("violations miss %q; got:\n%s", want, got)
		}
	}
	if strings.Contains(got, "uploaderx") || strings.Contains(got, "jsonstr") {
		t.Errorf("false positives:\n%s", got)
	}
}
