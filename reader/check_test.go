package reader_test

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"
	"gocloud.dev/blob/gcsblob"

	"github.com/backfillhq/backfill/reader"

	"github.com/backfillhq/backfill/internal/testutil"
)

// checkStore is one place objects live, for TestCheck.
type checkStore struct {
	source string                          // the listed object's source
	put    func(t *testing.T, data []byte) // replaces the object
	remove func(t *testing.T)
	opts   reader.Options
}

// TestCheck: Reader.Check passes while the object is the listed version,
// and says ErrChanged once it was replaced (another size; the same size
// with other bytes: another MD5, or locally another modification time),
// ErrNotFound once it is gone.
func TestCheck(t *testing.T) {
	const key = "dir/events.jsonl"
	orig := []byte(`{"event_type":"a","device_id":"device-1"}` + "\n")
	same := bytes.ReplaceAll(orig, []byte(`"a"`), []byte(`"b"`))
	stores := map[string]func(t *testing.T) checkStore{
		"Local": func(t *testing.T) checkStore {
			path := filepath.Join(t.TempDir(), filepath.FromSlash(key))
			writeFile(t, path, orig)
			old := time.Now().Add(-time.Hour)
			must(t, os.Chtimes(path, old, old))
			return checkStore{source: path,
				put: func(t *testing.T, data []byte) {
					writeFile(t, path, data)
				},
				remove: func(t *testing.T) { must(t, os.Remove(path)) },
			}
		},
		"S3": func(t *testing.T) checkStore {
			testutil.IsolateAWS(t)
			backend := s3mem.New()
			must(t, backend.CreateBucket("events"))
			put := func(t *testing.T, data []byte) {
				if _, err := backend.PutObject("events", key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
					t.Fatal(err)
				}
			}
			put(t, orig)
			ts := httptest.NewServer(gofakes3.New(backend).Server())
			t.Cleanup(ts.Close)
			q := url.Values{}
			q.Set("endpoint", ts.URL)
			q.Set("region", "us-east-1")
			q.Set("use_path_style", "true")
			return checkStore{source: "s3://events/" + key + "?" + q.Encode(), put: put,
				remove: func(t *testing.T) {
					if _, err := backend.DeleteObject("events", key); err != nil {
						t.Fatal(err)
					}
				}}
		},
		"GCS": func(t *testing.T) checkStore {
			srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Stop)
			srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "events"})
			put := func(t *testing.T, data []byte) {
				srv.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "events", Name: key}, Content: data})
			}
			put(t, orig)
			return checkStore{source: "gs://events/" + key, put: put,
				remove: func(t *testing.T) { must(t, srv.Client().Bucket("events").Object(key).Delete(context.Background())) },
				opts: reader.Options{OpenBucket: func(ctx context.Context, u string) (*blob.Bucket, error) {
					return gcsblob.OpenBucket(ctx, nil, "events", &gcsblob.Options{Client: srv.Client()})
				}}}
		},
	}
	for name, newStore := range stores {
		for _, change := range []string{"Size", "Content", "Removed"} {
			t.Run(name+"/"+change, func(t *testing.T) {
				st := newStore(t)
				r := newReader(t, st.opts)
				objs, err := listAll(t, r, st.source)
				if err != nil || len(objs) != 1 {
					t.Fatalf("list: %v, %v", objs, err)
				}
				ctx := context.Background()
				if err := r.Check(ctx, objs[0]); err != nil {
					t.Fatalf("Check of the listed version: %v", err)
				}
				want := reader.ErrChanged
				switch change {
				case "Size":
					st.put(t, append(orig, '\n'))
				case "Content":
					st.put(t, same)
				case "Removed":
					st.remove(t)
					want = reader.ErrNotFound
				}
				if err := r.Check(ctx, objs[0]); !errors.Is(err, want) {
					t.Fatalf("Check after %s: %v, want %v", change, err, want)
				}
			})
		}
	}
}
