package reader_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/internal/testutil"
	"github.com/backfillhq/backfill/reader"
)

// TestListUnencodedQuery lists an S3-compatible store through a URL whose
// endpoint parameter is written unencoded, as in the README. The query used
// to be read as part of the key prefix (and the listing sent to AWS).
func TestListUnencodedQuery(t *testing.T) {
	s3 := testutil.StartS3(t, "bucket")
	s3.Put(t, "bucket", "prefix/a.jsonl", []byte(`{"event_type":"e","user_id":"user-1","time":1700000000000}`+"\n"))
	s3.Put(t, "bucket", "prefix/b.jsonl", []byte(`{"event_type":"e","user_id":"user-1","time":1700000000001}`+"\n"))
	s3.Put(t, "bucket", "other/c.jsonl", []byte("{}\n"))
	r := newReader(t, reader.Options{})
	for _, tt := range []struct{ name, prefix string }{
		{"TrailingSlash", "prefix/"},
		{"NoSlash", "prefix"},
		{"Glob", "prefix/?.jsonl"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := listAll(t, r, s3.RawURL("bucket", tt.prefix))
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != 2 || objs[0].URL != "s3://bucket/prefix/a.jsonl" || objs[1].URL != "s3://bucket/prefix/b.jsonl" {
				t.Fatalf("listed %+v, want prefix/a.jsonl and prefix/b.jsonl", objs)
			}
		})
	}
}

func TestSourceUserinfoRefused(t *testing.T) {
	r := newReader(t, reader.Options{})
	_, err := listAll(t, r, "s3://user:PW@bucket/prefix/")
	if !errors.Is(err, reader.ErrBadSource) {
		t.Fatalf("err = %v, want ErrBadSource", err)
	}
	if s := err.Error(); strings.Contains(s, "PW") {
		t.Fatalf("error %q shows the password", s)
	}
}
