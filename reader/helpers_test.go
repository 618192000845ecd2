package reader_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/fixtures"
	"github.com/backfillhq/backfill/fixtures/fixturegen"
	"github.com/backfillhq/backfill/reader"
)

// result is everything a Decoder produced, in order.
type result struct {
	recs   []backfill.Record       // good records
	all    []backfill.Position     // positions of good and bad records, in order
	bad    []*backfill.RecordError // record errors
	objErr *backfill.ObjectError   // the object error, if any
}

// drain reads d to the end. It fails the test on anything but records,
// RecordErrors, one ObjectError followed by io.EOF, and io.EOF.
func drain(t testing.TB, d *reader.Decoder) result {
	t.Helper()
	ctx := context.Background()
	var res result
	for i := 0; ; i++ {
		if i > 10_000_000 {
			t.Fatal("decoder does not end")
		}
		rec, err := d.Next(ctx)
		var re *backfill.RecordError
		var oe *backfill.ObjectError
		switch {
		case err == nil:
			res.recs = append(res.recs, rec)
			res.all = append(res.all, rec.Pos)
		case errors.Is(err, io.EOF):
			if _, err := d.Next(ctx); err != io.EOF {
				t.Fatalf("Next after EOF = %v, want io.EOF", err)
			}
			return res
		case errors.As(err, &re):
			res.bad = append(res.bad, re)
			res.all = append(res.all, re.Pos)
		case errors.As(err, &oe):
			if res.objErr != nil {
				t.Fatalf("second ObjectError: %v", err)
			}
			res.objErr = oe
			if _, err := d.Next(ctx); err != io.EOF {
				t.Fatalf("Next after ObjectError = %v, want io.EOF", err)
			}
			return res
		default:
			t.Fatalf("Next: unexpected error type %T: %v", err, err)
		}
	}
}

// open opens obj from start and drains it.
func readObject(t testing.TB, r *reader.Reader, obj reader.Object, start reader.Start) result {
	t.Helper()
	d, err := r.Open(context.Background(), obj, start)
	if err != nil {
		t.Fatalf("Open(%s): %v", obj.URL, err)
	}
	res := drain(t, d)
	if err := d.Close(); err != nil {
		t.Errorf("Close(%s): %v", obj.URL, err)
	}
	return res
}

// listAll lists sources to the end.
func listAll(t testing.TB, r *reader.Reader, sources ...string) ([]reader.Object, error) {
	t.Helper()
	ctx := context.Background()
	l := r.List(ctx, sources)
	var objs []reader.Object
	for {
		o, err := l.Next(ctx)
		if err == io.EOF {
			return objs, nil
		}
		if err != nil {
			return objs, err
		}
		objs = append(objs, o)
	}
}

func newReader(t testing.TB, opts reader.Options) *reader.Reader {
	t.Helper()
	r, err := reader.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// fixtureFiles copies fixtures/formats into a temp dir and returns it.
func fixtureFiles(t testing.TB) (dir string, names []string) {
	t.Helper()
	dir = t.TempDir()
	ents, err := fs.ReadDir(fixtures.FS, "formats")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := fs.ReadFile(fixtures.FS, "formats/"+e.Name())
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, e.Name()), b)
		names = append(names, e.Name())
	}
	return dir, names
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// expectedEvents are the fixture events as compact JSON.
func expectedEvents(n int, seed int64) [][]byte {
	g := fixturegen.NewGenerator(fixturegen.Options{N: n, Seed: seed})
	var out [][]byte
	for e, ok := g.Next(); ok; e, ok = g.Next() {
		out = append(out, e.JSON())
	}
	return out
}

func compact(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compact %q: %v", b, err)
	}
	return buf.Bytes()
}

// localObject lists exactly one local file.
func localObject(t testing.TB, r *reader.Reader, path string) reader.Object {
	t.Helper()
	objs, err := listAll(t, r, path)
	if err != nil || len(objs) != 1 {
		t.Fatalf("list %s = %v, %v; want one object", path, objs, err)
	}
	return objs[0]
}
