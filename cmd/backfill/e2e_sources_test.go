package main

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/backfillhq/backfill/emulator"
	"github.com/backfillhq/backfill/fixtures/fixturegen"

	"github.com/backfillhq/backfill/internal/testutil"
)

// fixtureWant returns the events fixturegen writes for seed, expected from
// object.
func fixtureWant(t *testing.T, seed int64, object string) []wantEvent {
	t.Helper()
	g := fixturegen.NewGenerator(fixturegen.Options{N: fixturegen.DefaultN, Seed: seed})
	var out []wantEvent
	for i := int64(0); ; i++ {
		ev, ok := g.Next()
		if !ok {
			return out
		}
		w := wantEvent{insertID: ev.InsertID, object: object, record: i}
		if err := json.Unmarshal(ev.JSON(), &w.event); err != nil {
			t.Fatal(err)
		}
		out = append(out, w)
	}
}

// seededFixtures writes every format under dir with a distinct seed per
// format (so their insert_ids differ), plus files a listing must skip, and
// returns the object contents by name and the seeds.
func seededFixtures(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	seeds := map[string]int64{}
	for i, f := range fixturegen.Formats {
		name := "events." + f
		seeds[name] = int64(11 + i)
		if err := fixturegen.WriteFile(filepath.Join(dir, name), fixturegen.Options{Seed: seeds[name]}); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string]string{"_SUCCESS": "", ".hidden.jsonl": "{}\n", "_tmp/part.jsonl": "{}\n"} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return seeds
}

// wantSeeded returns the expected events of the seeded files whose names
// pass keep, with object URLs base+name.
func wantSeeded(t *testing.T, seeds map[string]int64, base string, keep func(string) bool) []wantEvent {
	var want []wantEvent
	for name, seed := range seeds {
		if keep == nil || keep(name) {
			want = append(want, fixtureWant(t, seed, base+name)...)
		}
	}
	return want
}

func isJSONL(name string) bool { return strings.Contains(name, ".jsonl") }

// TestE2ELocalSources sends every committed fixture format through the
// command as a path and as a file:// URL, and generated files of every
// format as a directory and a glob: the events arrive exactly once with the
// source's content.
func TestE2ELocalSources(t *testing.T) {
	t.Parallel()
	fixtures, err := filepath.Abs(filepath.Join("..", "..", "fixtures", "formats"))
	if err != nil {
		t.Fatal(err)
	}
	gen := t.TempDir()
	seeds := seededFixtures(t, gen)
	type tcase struct {
		name   string
		source string
		want   []wantEvent
		// dups is the number of duplicates the emulator must absorb.
		dups int64
	}
	var tests []tcase
	for _, f := range fixturegen.Formats {
		path := filepath.Join(fixtures, "events."+f)
		want := fixtureWant(t, 1, fileURL(path))
		tests = append(tests,
			tcase{name: "Path/" + f, source: path, want: want},
			tcase{name: "FileURL/" + f, source: fileURL(path), want: want})
	}
	tests = append(tests,
		tcase{name: "Directory", source: gen, want: wantSeeded(t, seeds, fileURL(gen)+"/", nil)},
		tcase{name: "DirectoryURL", source: fileURL(gen) + "/", want: wantSeeded(t, seeds, fileURL(gen)+"/", nil)},
		tcase{name: "Glob", source: gen + "/*.jsonl*", want: wantSeeded(t, seeds, fileURL(gen)+"/", isJSONL)},
		// The committed files hold the same 20 events in 7 formats:
		// dedupe keeps one copy of each.
		tcase{name: "CommittedDirectory", source: fixtures, want: fixtureWant(t, 1, fileURL(filepath.Join(fixtures, "events.csv"))), dups: 6 * 20},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := startEmulator(t, emulator.Config{})
			w := newWorkDir(t)
			res := runMain(t, append(w.runArgs(e, "--api-key", e2eKey, "--csv-types", fixturegen.CSVColumnTypesFlag()), tt.source)...)
			if res.code != ExitOK {
				t.Fatalf("exit code %d\n%s", res.code, res)
			}
			checkDelivered(t, e, tt.want)
			rep := readReport(t, w.report)
			rep.checkInvariant(t)
			read := int64(len(tt.want)) + tt.dups
			if rep.EventsRead != read || rep.EventsAccepted != read {
				t.Errorf("report read %d accepted %d, want %d", rep.EventsRead, rep.EventsAccepted, read)
			}
			if st := e.Stats(); st.EventsDuplicate != tt.dups {
				t.Errorf("emulator absorbed %d duplicates, want %d", st.EventsDuplicate, tt.dups)
			}
		})
	}
}

// bucketSources are the source forms tried against a bucket: a prefix, a
// glob and a single object; query is appended to each.
func bucketSources(t *testing.T, seeds map[string]int64, base, query string) []struct {
	name, source string
	want         []wantEvent
} {
	return []struct {
		name, source string
		want         []wantEvent
	}{
		{"Prefix", base + "exports/" + query, wantSeeded(t, seeds, base+"exports/", nil)},
		{"Glob", base + "exports/*.jsonl*" + query, wantSeeded(t, seeds, base+"exports/", isJSONL)},
		{"Parquet", base + "exports/events.parquet" + query, wantSeeded(t, seeds, base+"exports/", func(n string) bool { return n == "events.parquet" })},
		{"CSV", base + "exports/events.csv" + query, wantSeeded(t, seeds, base+"exports/", func(n string) bool { return n == "events.csv" })},
	}
}

// bucketObjects returns the seeded files as objects under exports/, plus an
// object outside the prefix.
func bucketObjects(t *testing.T) (map[string][]byte, map[string]int64) {
	dir := t.TempDir()
	seeds := seededFixtures(t, dir)
	objs := map[string][]byte{"exports-old/other.jsonl": []byte(`{"event_type":"x","device_id":"device-other"}` + "\n")}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		objs["exports/"+filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return objs, seeds
}

// runBucket runs every bucket source form against a fresh emulator.
func runBucket(t *testing.T, seeds map[string]int64, base, query string) {
	for _, tt := range bucketSources(t, seeds, base, query) {
		t.Run(tt.name, func(t *testing.T) {
			e := startEmulator(t, emulator.Config{})
			w := newWorkDir(t)
			res := runMain(t, append(w.runArgs(e, "--api-key", e2eKey, "--csv-types", fixturegen.CSVColumnTypesFlag()), tt.source)...)
			if res.code != ExitOK {
				t.Fatalf("exit code %d\n%s", res.code, res)
			}
			checkDelivered(t, e, tt.want)
			rep := readReport(t, w.report)
			rep.checkInvariant(t)
			if rep.EventsAccepted != int64(len(tt.want)) {
				t.Errorf("report accepted %d, want %d", rep.EventsAccepted, len(tt.want))
			}
			for _, o := range rep.Objects {
				if strings.Contains(o.URL, "?") || strings.Contains(o.URL, "endpoint") {
					t.Errorf("report object URL %q carries the query", o.URL)
				}
			}
		})
	}
}

// TestE2ES3 sends objects of every format from an in-process S3 (gofakes3).
func TestE2ES3(t *testing.T) {
	testutil.IsolateAWS(t)
	objs, seeds := bucketObjects(t)
	backend := s3mem.New()
	if err := backend.CreateBucket("events"); err != nil {
		t.Fatal(err)
	}
	for k, v := range objs {
		if _, err := backend.PutObject("events", k, map[string]string{}, bytes.NewReader(v), int64(len(v)), nil); err != nil {
			t.Fatal(err)
		}
	}
	ts := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(ts.Close)
	q := url.Values{}
	q.Set("endpoint", ts.URL)
	q.Set("region", "us-east-1")
	q.Set("use_path_style", "true")
	q.Set("response_checksum_validation", "when_required")
	q.Set("request_checksum_calculation", "when_required")
	runBucket(t, seeds, "s3://events/", "?"+q.Encode())
}

// TestE2EGCS sends objects of every format from an in-process GCS
// (fake-gcs-server) opened by gs:// URL through STORAGE_EMULATOR_HOST,
// which must be set before the process's first gs:// open: this is the
// package's only GCS test.
func TestE2EGCS(t *testing.T) {
	objs, seeds := bucketObjects(t)
	var initial []fakestorage.Object
	for k, v := range objs {
		initial = append(initial, fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "events", Name: k}, Content: v})
	}
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		InitialObjects: initial, Scheme: "http", Host: "127.0.0.1", PublicHost: "127.0.0.1",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL(), "http://"))
	runBucket(t, seeds, "gs://events/", "")
}

// TestE2ECorruptObject puts a truncated gzip file between two good ones:
// the run reads the others, reports the object as failed with a located
// error and exits 1; with --fail-fast it stops at the bad object. Once the
// file is repaired, a re-run retries only that object.
func TestE2ECorruptObject(t *testing.T) {
	t.Parallel()
	for _, failFast := range []bool{false, true} {
		name := "Continue"
		if failFast {
			name = "FailFast"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			a := genFile("a.jsonl", "a", 80, genOptions{})
			b := genFile("b.jsonl.gz", "b", 400, genOptions{})
			c := genFile("c.jsonl", "c", 80, genOptions{})
			writeFiles(t, root, a, b, c)
			bad := filepath.Join(root, "b.jsonl.gz")
			full, err := os.ReadFile(bad)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(bad, full[:len(full)/2], 0o644); err != nil {
				t.Fatal(err)
			}
			e := startEmulator(t, emulator.Config{})
			w := newWorkDir(t)
			flags := []string{"--api-key", e2eKey, "--route", "batch"}
			if failFast {
				flags = append(flags, "--fail-fast")
			}
			res := runMain(t, append(w.runArgs(e, flags...), root)...)
			if res.code != ExitFailed {
				t.Fatalf("exit code %d, want %d\n%s", res.code, ExitFailed, res)
			}
			if !strings.Contains(res.stdout, "failed: "+fileURL(bad)+": ") {
				t.Errorf("the summary does not name the bad object:\n%s", res)
			}
			if strings.Contains(res.stdout, fileURL(bad)+": "+fileURL(bad)) {
				t.Errorf("the summary repeats the object URL:\n%s", res.stdout)
			}
			goodA, _ := expect(root, nil, a)
			goodC, _ := expect(root, nil, c)
			goodB, _ := expect(root, nil, b)
			got := received(t, e)
			// --fail-fast abandons what is still queued (a re-run sends it).
			for _, w := range goodA {
				if _, ok := got[w.insertID]; !ok && !failFast {
					t.Fatalf("event %s of the good file before the bad one is missing", w.insertID)
				}
			}
			nB := 0
			for _, w := range goodB {
				if r, ok := got[w.insertID]; ok {
					nB++
					checkContent(t, w, r.Event)
				}
			}
			nC := 0
			for _, w := range goodC {
				if _, ok := got[w.insertID]; ok {
					nC++
				}
			}
			rep := readReport(t, w.report)
			if rep.Status != "failed" {
				t.Errorf("report status %s, want failed", rep.Status)
			}
			var failed []string
			for _, o := range rep.Objects {
				if o.Status == "failed" {
					failed = append(failed, o.URL+": "+o.Error)
				}
			}
			if len(failed) != 1 || !strings.Contains(failed[0], fileURL(bad)+": ") {
				t.Fatalf("failed objects %q, want only %s", failed, bad)
			}
			if !regexp.MustCompile(`(line|offset|record) \d+`).MatchString(failed[0]) {
				t.Errorf("the object error does not say where it failed: %s", failed[0])
			}
			if failFast {
				if nC != 0 {
					t.Errorf("--fail-fast: %d events of the object after the bad one were sent", nC)
				}
			} else {
				if nC != len(goodC) {
					t.Errorf("%d of %d events of the object after the bad one arrived", nC, len(goodC))
				}
				rep.checkInvariant(t)
				if rep.ObjectsFailed != 1 || rep.ObjectsDone != 2 {
					t.Errorf("objects failed %d done %d", rep.ObjectsFailed, rep.ObjectsDone)
				}
			}

			// Repair the object and run again: everything arrives once. The
			// object changed since it was checkpointed, which takes --force.
			if err := os.WriteFile(bad, full, 0o644); err != nil {
				t.Fatal(err)
			}
			res = runMain(t, append(w.runArgs(e, append(flags, "--force")...), root)...)
			if res.code != ExitOK {
				t.Fatalf("re-run after the repair: exit code %d\n%s", res.code, res)
			}
			all, _ := expect(root, nil, a, b, c)
			checkDelivered(t, e, all)
			rep = readReport(t, w.report)
			rep.checkInvariant(t)
			if rep.EventsAccepted != int64(len(all)) {
				t.Errorf("after the repair: report accepted %d, want %d", rep.EventsAccepted, len(all))
			}
		})
	}
}
