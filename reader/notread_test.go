package reader_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/backfillhq/backfill/reader"
)

// TestListNotReadable: entries of a source folder that are not regular
// files are listed with the reason they cannot be read (they used to be
// skipped silently), and opening one fails at once, without blocking on a
// FIFO.
func TestListNotReadable(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.jsonl"), []byte(`{"event_type":"e"}`+"\n"))
	if err := syscall.Mkfifo(filepath.Join(dir, "b-fifo.jsonl"), 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	must(t, os.Symlink(filepath.Join(dir, "missing.jsonl"), filepath.Join(dir, "c-dangling.jsonl")))
	must(t, os.Symlink(filepath.Join(dir, "d-loop.jsonl"), filepath.Join(dir, "d-loop.jsonl")))
	must(t, os.Symlink(filepath.Join(dir, "b-fifo.jsonl"), filepath.Join(dir, "e-link-to-fifo.jsonl")))
	must(t, os.Symlink(filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "f-link.jsonl")))
	must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	must(t, os.Symlink(filepath.Join(dir, "sub"), filepath.Join(dir, "g-dirlink")))
	must(t, os.Symlink(filepath.Join(dir, "nope"), filepath.Join(dir, "_hidden.jsonl"))) // hidden: skipped as documented

	r := newReader(t, reader.Options{})
	objs, err := listAll(t, r, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, notRead string }{
		{"a.jsonl", ""},
		{"b-fifo.jsonl", "a named pipe (FIFO), not a regular file"},
		{"c-dangling.jsonl", "a dangling symbolic link (its target does not exist)"},
		{"d-loop.jsonl", "a symbolic link loop"},
		{"e-link-to-fifo.jsonl", "a named pipe (FIFO), not a regular file"},
		{"f-link.jsonl", ""},
		{"g-dirlink", "a symbolic link to a directory (links to directories are not followed)"},
	}
	if len(objs) != len(want) {
		t.Fatalf("listed %d objects %+v, want %d", len(objs), objs, len(want))
	}
	for i, w := range want {
		o := objs[i]
		if filepath.Base(o.Key) != w.name || o.NotRead != w.notRead {
			t.Errorf("object %d = %s (not read: %q), want %s (%q)", i, o.Key, o.NotRead, w.name, w.notRead)
		}
		if w.notRead == "" {
			continue
		}
		res := readObject(t, r, o, reader.Start{})
		if res.objErr == nil || !errors.Is(res.objErr, reader.ErrNotReadable) || len(res.recs) != 0 {
			t.Errorf("%s: object error %v, %d records; want ErrNotReadable", w.name, res.objErr, len(res.recs))
		}
	}
	// A glob that names files only leaves the link to a directory out, as
	// it would the directory; one that reaches into directories lists it.
	for glob, listed := range map[string]bool{"/*.jsonl": false, "/**/*.jsonl": true, "/g-*/*.jsonl": true, "/h-*/*.jsonl": false} {
		objs, err := listAll(t, r, dir+glob)
		if err != nil && !errors.Is(err, reader.ErrNoObjects) {
			t.Fatal(err)
		}
		found := false
		for _, o := range objs {
			found = found || filepath.Base(o.Key) == "g-dirlink"
		}
		if found != listed {
			t.Errorf("glob %s: link to a directory listed %v, want %v", glob, found, listed)
		}
	}
	// A FIFO named on the command line is refused too.
	objs, err = listAll(t, r, filepath.Join(dir, "b-fifo.jsonl"))
	if err != nil || len(objs) != 1 || objs[0].NotRead == "" {
		t.Fatalf("single FIFO source: %+v, %v; want one object not read", objs, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
