package reader_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/backfillhq/backfill/reader"
)

func localTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, p := range []string{
		"a.jsonl", "a/b.jsonl", "a-b.jsonl", "_SUCCESS", ".hidden.jsonl", ".git/x.jsonl", "_tmp/y.jsonl",
		"dt=2024-01/part-1.parquet", "dt=2024-01/part-2.parquet", "dt=2024-02/part-1.parquet",
		"dt=2024-02/sub/part-3.parquet", "dt=2023-12/part-1.parquet", "dt=2024-01/_SUCCESS",
	} {
		writeFile(t, root+"/"+p, []byte("{}\n"))
	}
	if err := os.Symlink(root+"/a.jsonl", root+"/link.jsonl"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(root+"/a", root+"/linkdir"); err != nil {
		t.Fatal(err)
	}
	return root
}

func keys(objs []reader.Object, trim string) string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, strings.TrimPrefix(o.Key, trim))
	}
	return strings.Join(ks, " ")
}

func TestListLocal(t *testing.T) {
	root := localTree(t)
	tests := []struct {
		name    string
		sources []string
		want    string
		wantErr error
	}{
		{"Dir", []string{root}, "a-b.jsonl a.jsonl a/b.jsonl dt=2023-12/part-1.parquet dt=2024-01/part-1.parquet dt=2024-01/part-2.parquet dt=2024-02/part-1.parquet dt=2024-02/sub/part-3.parquet link.jsonl linkdir", nil},
		{"DirTrailingSlash", []string{root + "/a/"}, "a/b.jsonl", nil},
		{"SingleFile", []string{root + "/a.jsonl"}, "a.jsonl", nil},
		{"ExplicitHidden", []string{root + "/_tmp/y.jsonl", root + "/_tmp"}, "_tmp/y.jsonl _tmp/y.jsonl", nil},
		{"Glob", []string{root + "/dt=2024-*/part-*.parquet"}, "dt=2024-01/part-1.parquet dt=2024-01/part-2.parquet dt=2024-02/part-1.parquet", nil},
		{"GlobDoubleStar", []string{root + "/dt=2024-*/**/part-*.parquet"}, "dt=2024-01/part-1.parquet dt=2024-01/part-2.parquet dt=2024-02/part-1.parquet dt=2024-02/sub/part-3.parquet", nil},
		// The link to a directory is listed as not read where the walk
		// would have entered it (see TestListNotReadable).
		{"GlobAnyDepth", []string{root + "/**/*.jsonl"}, "a-b.jsonl a.jsonl a/b.jsonl link.jsonl linkdir", nil},
		{"GlobClassAndQuestion", []string{root + "/dt=202[3]-*/part-?.parquet"}, "dt=2023-12/part-1.parquet", nil},
		{"GlobPartialPrefix", []string{root + "/dt=2024-0*"}, "", nil}, // matches directories only
		{"SourcesInOrder", []string{root + "/a/b.jsonl", "file://" + root + "/a.jsonl"}, "a/b.jsonl a.jsonl", nil},
		{"Missing", []string{root + "/nope"}, "", reader.ErrNotFound},
		{"NoMatch", []string{root + "/*.csv"}, "", reader.ErrNoObjects},
		{"BadGlob", []string{root + "/[a"}, "", reader.ErrBadSource},
		{"FileQuery", []string{"file://" + root + "?x=1"}, "", reader.ErrBadSource},
		{"Empty", []string{""}, "", reader.ErrBadSource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReader(t, reader.Options{})
			objs, err := listAll(t, r, tt.sources...)
			if tt.name == "GlobPartialPrefix" {
				if !errors.Is(err, reader.ErrNoObjects) {
					t.Fatalf("err = %v, want ErrNoObjects", err)
				}
				return
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if src := strings.TrimPrefix(tt.sources[0], "file://"); src != "" && !strings.Contains(err.Error(), src[:len(src)-4]) {
					t.Fatalf("error %q does not name the source", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := keys(objs, root+"/"); got != tt.want {
				t.Fatalf("keys:\n got %s\nwant %s", got, tt.want)
			}
			for _, o := range objs {
				if o.NotRead != "" && strings.HasSuffix(o.Key, "/linkdir") {
					continue
				}
				if o.URL != "file://"+o.Key || o.Size != 3 || o.ModTime.IsZero() || !strings.Contains(o.Fingerprint, "size=3 mtime=") {
					t.Fatalf("object %+v", o)
				}
			}
		})
	}
}

func TestListFormatOverride(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/x.txt.gz", []byte("{}"))
	writeFile(t, dir+"/y.csv", []byte("{}"))
	r := newReader(t, reader.Options{})
	objs, err := listAll(t, r, dir)
	if err != nil {
		t.Fatal(err)
	}
	if objs[0].Format != "" || objs[0].Compression != reader.CompressionGzip || objs[1].Format != reader.FormatCSV {
		t.Fatalf("objects %+v", objs)
	}
	r = newReader(t, reader.Options{Format: reader.FormatJSONLines})
	objs, err = listAll(t, r, dir)
	if err != nil {
		t.Fatal(err)
	}
	if objs[0].Format != reader.FormatJSONLines || objs[1].Format != reader.FormatJSONLines {
		t.Fatalf("objects %+v", objs)
	}
}

// memBuckets returns an OpenBucket hook serving in-memory buckets and a
// count of opens per URL.
func memBuckets(t *testing.T, objects map[string]string) (func(context.Context, string) (*blob.Bucket, error), map[string]int) {
	t.Helper()
	var mu sync.Mutex
	opens := map[string]int{}
	return func(ctx context.Context, url string) (*blob.Bucket, error) {
		mu.Lock()
		opens[url]++
		mu.Unlock()
		b := memblob.OpenBucket(nil)
		for k, v := range objects {
			if err := b.WriteAll(ctx, k, []byte(v), nil); err != nil {
				return nil, err
			}
		}
		return b, nil
	}, opens
}

func TestListBucket(t *testing.T) {
	open, opens := memBuckets(t, map[string]string{
		"events/2024/01/a.jsonl":    "{\"a\":1}\n",
		"events/2024/01/_SUCCESS":   "",
		"events/2024/02/":           "",
		"events/2024/02/b.jsonl.gz": string(gzipBytes(t, []byte("{\"b\":1}\n"))),
		"events/2024/.tmp/c.jsonl":  "{}\n",
		"events-old/x.jsonl":        "{}\n",
		"other/y.csv":               "a\n1\n",
	})
	tests := []struct {
		source, want string
	}{
		{"mem://bkt/events/", "events/2024/01/a.jsonl events/2024/02/b.jsonl.gz"},
		{"mem://bkt/events", "events-old/x.jsonl events/2024/01/a.jsonl events/2024/02/b.jsonl.gz"},
		{"mem://bkt/events/*/0?/*.jsonl*", "events/2024/01/a.jsonl events/2024/02/b.jsonl.gz"},
		{"mem://bkt/**/*.csv", "other/y.csv"},
		{"mem://bkt/events/2024/0[2]/*?q=1", "events/2024/02/b.jsonl.gz"},
		// The README's S3-compatible form: an unescaped URL as a value.
		{"mem://bkt/events/2024/0?/*?endpoint=https://minio.local:9000&use_path_style=true", "events/2024/01/a.jsonl events/2024/02/b.jsonl.gz"},
		{"mem://bkt", "events-old/x.jsonl events/2024/01/a.jsonl events/2024/02/b.jsonl.gz other/y.csv"},
	}
	r := newReader(t, reader.Options{OpenBucket: open})
	for _, tt := range tests {
		t.Run(tt.source, func(t *testing.T) {
			objs, err := listAll(t, r, tt.source)
			if err != nil {
				t.Fatal(err)
			}
			if got := keys(objs, ""); got != tt.want {
				t.Fatalf("keys:\n got %s\nwant %s", got, tt.want)
			}
			for _, o := range objs {
				if o.URL != "mem://bkt/"+o.Key || o.MD5 == "" || !strings.HasPrefix(o.Fingerprint, "size=") || !strings.Contains(o.Fingerprint, "md5="+o.MD5) {
					t.Fatalf("object %+v", o)
				}
			}
		})
	}
	if opens["mem://bkt"] != 1 || opens["mem://bkt?q=1"] != 1 || opens["mem://bkt?endpoint=https%3A%2F%2Fminio.local%3A9000&use_path_style=true"] != 1 || len(opens) != 3 {
		t.Fatalf("bucket opens %v, want one per bucket URL", opens)
	}
	objs, err := listAll(t, r, "mem://bkt/events/2024/02/")
	if err != nil {
		t.Fatal(err)
	}
	res := readObject(t, r, objs[0], reader.Start{})
	if len(res.recs) != 1 || string(res.recs[0].Data) != `{"b":1}` || res.recs[0].Pos.Object != "mem://bkt/events/2024/02/b.jsonl.gz" {
		t.Fatalf("read %+v", res)
	}
	if _, err := listAll(t, r, "mem://bkt/nothing/"); !errors.Is(err, reader.ErrNoObjects) || !strings.Contains(err.Error(), "mem://bkt/nothing/") {
		t.Fatalf("err = %v", err)
	}
	if opens["mem://bkt"] != 1 {
		t.Fatalf("bucket reopened: %v", opens)
	}
}

func TestListBucketOpenError(t *testing.T) {
	r := newReader(t, reader.Options{OpenBucket: func(context.Context, string) (*blob.Bucket, error) {
		return nil, errors.New("boom")
	}})
	ctx := context.Background()
	l := r.List(ctx, []string{"mem://b/x?region=secret-free"})
	_, err := l.Next(ctx)
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "mem://b/x") {
		t.Fatalf("err = %v", err)
	}
	if _, err2 := l.Next(ctx); err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("second Next = %v, want the same error", err2)
	}
}

// httpErr is an SDK error with an HTTP status and an error code, as AWS's.
type httpErr struct {
	status int
	code   string
}

func (e httpErr) Error() string       { return "operation error: " + e.code }
func (e httpErr) HTTPStatusCode() int { return e.status }
func (e httpErr) ErrorCode() string   { return e.code }

// TestListBucketErrors: a bucket that refuses the credentials or does not
// exist gives a *BucketError naming the bucket and what to check, matching
// its sentinel and the SDK's error.
func TestListBucketErrors(t *testing.T) {
	tests := []struct {
		name, source string
		err          error
		want         error
		says         []string
	}{
		{"Denied", "s3://events/x/", httpErr{403, "SignatureDoesNotMatch"}, reader.ErrAccessDenied,
			[]string{`list s3://events/x/: the storage server refused access to bucket "events" (HTTP 403 SignatureDoesNotMatch)`, "AWS_ACCESS_KEY_ID"}},
		{"NoBucket", "gs://nope/x/", httpErr{404, "NoSuchBucket"}, reader.ErrNoBucket,
			[]string{`list gs://nope/x/: bucket "nope" does not exist`, "check the bucket name"}},
		{"Other", "azblob://c/x/", errors.New("connection refused"), nil, []string{"list azblob://c/x/: ", "connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReader(t, reader.Options{OpenBucket: func(context.Context, string) (*blob.Bucket, error) {
				return nil, tt.err
			}})
			_, err := listAll(t, r, tt.source)
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v is not %v", err, tt.want)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("error %v does not wrap the SDK's", err)
			}
		})
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name string
		f    reader.Format
		c    reader.Compression
	}{
		{"a.jsonl", reader.FormatJSONLines, ""},
		{"a.NDJSON.gz", reader.FormatJSONLines, reader.CompressionGzip},
		{"a.json-lines.zst", reader.FormatJSONLines, reader.CompressionZstd},
		{"dir.csv/a.json", reader.FormatJSONArray, ""},
		{"a.csv.zstd", reader.FormatCSV, reader.CompressionZstd},
		{"a.tsv", reader.FormatTSV, ""},
		{"part-0.pq", reader.FormatParquet, ""},
		{"a.parquet", reader.FormatParquet, ""},
		{"README", "", ""},
		{"a.gz", "", reader.CompressionGzip},
	}
	for _, tt := range tests {
		if f, c := reader.Detect(tt.name); f != tt.f || c != tt.c {
			t.Errorf("Detect(%q) = %q, %q; want %q, %q", tt.name, f, c, tt.f, tt.c)
		}
	}
	for in, want := range map[string]reader.Format{"ndjson": reader.FormatJSONLines, "JSON": reader.FormatJSONArray, "pq": reader.FormatParquet, "": ""} {
		if got, err := reader.ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := reader.ParseFormat("xml"); !errors.Is(err, reader.ErrUnknownFormat) {
		t.Errorf("ParseFormat(xml) = %v", err)
	}
}
