package reader_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"
	"gocloud.dev/blob/gcsblob"

	"github.com/backfillhq/backfill/fixtures/fixturegen"
	"github.com/backfillhq/backfill/reader"

	"github.com/backfillhq/backfill/internal/testutil"
)

// getLog records the GET requests a fake server answered.
type getLog struct {
	mu     sync.Mutex
	ranges []string // Range header of each object GET ("" when absent)
	bytes  int64    // response body bytes of object GETs
}

func (g *getLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Query().Has("list-type") || r.URL.RawQuery == "" && strings.Count(strings.Trim(r.URL.Path, "/"), "/") == 0 {
			h.ServeHTTP(w, r)
			return
		}
		cw := &countingWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		g.mu.Lock()
		g.ranges = append(g.ranges, r.Header.Get("Range"))
		g.bytes += cw.n
		g.mu.Unlock()
	})
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// cloudObjects is the object set served by the fakes: the fixtures, plus a
// larger Parquet file and objects the listing must skip.
func cloudObjects(t *testing.T) map[string][]byte {
	t.Helper()
	dir, names := fixtureFiles(t)
	objs := map[string][]byte{
		"formats/_SUCCESS":       nil,
		"formats/.crc/x.jsonl":   []byte("{}\n"),
		"formats-not/skip.jsonl": []byte("{}\n"),
	}
	for _, n := range names {
		b, err := os.ReadFile(dir + "/" + n)
		if err != nil {
			t.Fatal(err)
		}
		objs["formats/"+n] = b
	}
	var big bytes.Buffer
	if err := fixturegen.Write(&big, "parquet", fixturegen.Options{N: 30000, Seed: 3, RowGroupRows: 5000}); err != nil {
		t.Fatal(err)
	}
	objs["big/events.parquet"] = big.Bytes()
	return objs
}

// checkCloud lists base+"formats/" and runs the contract on every fixture,
// then checks that a projected Parquet read uses bounded range reads.
func checkCloud(t *testing.T, r *reader.Reader, base, query string, log *getLog, size int64) {
	t.Helper()
	objs, err := listAll(t, r, base+"formats/"+query)
	if err != nil {
		t.Fatal(err)
	}
	want := expectedEvents(fixturegen.DefaultN, 1)
	var names []string
	for _, o := range objs {
		names = append(names, strings.TrimPrefix(o.URL, base))
		if o.Fingerprint == "" || o.Size <= 0 || strings.Contains(o.URL, "?") {
			t.Fatalf("object %+v", o)
		}
		t.Run(o.Key, func(t *testing.T) { checkContract(t, r, o, want, nil) })
	}
	if got, want := strings.Join(names, " "), "formats/events.csv formats/events.json formats/events.jsonl formats/events.jsonl.gz formats/events.jsonl.zst formats/events.parquet formats/events.tsv"; got != want {
		t.Fatalf("listed %s\nwant %s", got, want)
	}

	t.Run("ResumeSeeks", func(t *testing.T) {
		var obj reader.Object
		for _, o := range objs {
			if strings.HasSuffix(o.Key, ".jsonl") {
				obj = o
			}
		}
		full := readObject(t, r, obj, reader.Start{})
		log.mu.Lock()
		log.ranges = nil
		log.mu.Unlock()
		p := full.recs[15].Pos
		tail := readObject(t, r, obj, reader.StartAt(p))
		if len(tail.recs) != 5 || tail.recs[0].Pos != p {
			t.Fatalf("resume at %+v: %d records", p, len(tail.recs))
		}
		log.mu.Lock()
		defer log.mu.Unlock()
		if got, want := strings.Join(log.ranges, " "), "bytes=0-65535 bytes="+strconv.FormatInt(p.Offset, 10)+"-"; got != want {
			t.Fatalf("GET ranges %q, want %q (a bounded head, then the tail)", got, want)
		}
	})

	t.Run("ParquetRangeReads", func(t *testing.T) {
		pr := newReader(t, reader.Options{Columns: []string{"time"}})
		big, err := listAll(t, pr, base+"big/"+query)
		if err != nil || len(big) != 1 || big[0].Size != size {
			t.Fatalf("list big = %+v, %v", big, err)
		}
		log.mu.Lock()
		log.ranges, log.bytes = nil, 0
		log.mu.Unlock()
		d, err := pr.Open(context.Background(), big[0], reader.Start{Record: 12345})
		if err != nil {
			t.Fatal(err)
		}
		res := drain(t, d)
		read := d.BytesRead()
		d.Close()
		if len(res.recs) != 30000-12345 || res.objErr != nil || res.recs[0].Pos.RowGroup != 2 || res.recs[0].Pos.Row != 2345 {
			t.Fatalf("got %d records, first %+v, object error %v", len(res.recs), res.recs[0].Pos, res.objErr)
		}
		log.mu.Lock()
		defer log.mu.Unlock()
		if len(log.ranges) == 0 {
			t.Fatal("no GETs seen")
		}
		for _, rg := range log.ranges {
			if !strings.HasPrefix(rg, "bytes=") {
				t.Fatalf("GET without a Range header (whole object): %q", log.ranges)
			}
		}
		if log.bytes >= size/2 || read >= size/2 || read == 0 {
			t.Fatalf("projected read fetched %d bytes (decoder says %d) of a %d-byte object", log.bytes, read, size)
		}
		t.Logf("%d range GETs, %d of %d bytes", len(log.ranges), log.bytes, size)
	})
}

func TestS3(t *testing.T) {
	testutil.IsolateAWS(t)
	objs := cloudObjects(t)
	backend := s3mem.New()
	if err := backend.CreateBucket("events"); err != nil {
		t.Fatal(err)
	}
	for k, v := range objs {
		if _, err := backend.PutObject("events", k, map[string]string{}, bytes.NewReader(v), int64(len(v)), nil); err != nil {
			t.Fatal(err)
		}
	}
	log := &getLog{}
	ts := httptest.NewServer(log.wrap(gofakes3.New(backend).Server()))
	t.Cleanup(ts.Close)
	q := url.Values{}
	q.Set("endpoint", ts.URL)
	q.Set("region", "us-east-1")
	q.Set("use_path_style", "true")
	q.Set("response_checksum_validation", "when_required")
	q.Set("request_checksum_calculation", "when_required")
	r := newReader(t, reader.Options{ColumnTypes: fixturegen.CSVColumnTypes})
	checkCloud(t, r, "s3://events/", "?"+q.Encode(), log, int64(len(objs["big/events.parquet"])))
}

func TestGCS(t *testing.T) {
	objs := cloudObjects(t)
	var initial []fakestorage.Object
	for k, v := range objs {
		initial = append(initial, fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "events", Name: k}, Content: v})
	}
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{InitialObjects: initial, NoListener: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	// The GCS client is injected through Options.OpenBucket; production
	// code opens gs:// URLs with Application Default Credentials.
	open := func(ctx context.Context, u string) (*blob.Bucket, error) {
		if u != "gs://events" {
			t.Errorf("OpenBucket(%q)", u)
		}
		return gcsblob.OpenBucket(ctx, nil, "events", &gcsblob.Options{Client: srv.Client()})
	}
	r := newReader(t, reader.Options{ColumnTypes: fixturegen.CSVColumnTypes, OpenBucket: open})
	objsListed, err := listAll(t, r, "gs://events/formats/")
	if err != nil {
		t.Fatal(err)
	}
	if len(objsListed) != 7 {
		t.Fatalf("listed %d objects", len(objsListed))
	}
	want := expectedEvents(fixturegen.DefaultN, 1)
	for _, o := range objsListed {
		if !strings.HasPrefix(o.URL, "gs://events/formats/events.") || !strings.Contains(o.Fingerprint, "md5=") {
			t.Fatalf("object %+v", o)
		}
		t.Run(o.Key, func(t *testing.T) { checkContract(t, r, o, want, nil) })
	}
	pr := newReader(t, reader.Options{Columns: []string{"time", "user_id"}, OpenBucket: open})
	big, err := listAll(t, pr, "gs://events/big/")
	if err != nil || len(big) != 1 {
		t.Fatalf("list big = %v, %v", big, err)
	}
	d, err := pr.Open(context.Background(), big[0], reader.Start{Record: 29999})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	res := drain(t, d)
	if len(res.recs) != 1 || res.objErr != nil || d.BytesRead() >= big[0].Size/2 {
		t.Fatalf("records %d, object error %v, read %d of %d", len(res.recs), res.objErr, d.BytesRead(), big[0].Size)
	}
}
