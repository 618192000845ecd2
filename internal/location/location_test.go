package location_test

import (
	"errors"
	"testing"

	"github.com/backfillhq/backfill/internal/location"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, in                        string
		scheme, host, path, query, user string
		bucket, without                 string
		wantErr                         error
	}{
		{name: "LocalPath", in: "./events/", path: "./events/", without: "./events/"},
		{name: "LocalWithQuestionMark", in: "data/part-?.csv", path: "data/part-?.csv", without: "data/part-?.csv"},
		{name: "File", in: "file:///data/events/2024-*.json.gz", scheme: "file", path: "/data/events/2024-*.json.gz", without: "file:///data/events/2024-*.json.gz"},
		{name: "S3Prefix", in: "s3://bucket/events/", scheme: "s3", host: "bucket", path: "events/", bucket: "s3://bucket", without: "s3://bucket/events/"},
		{name: "S3Region", in: "s3://bucket/events/dt=2024-0*/*.parquet?region=eu-west-1", scheme: "s3", host: "bucket", path: "events/dt=2024-0*/*.parquet", query: "region=eu-west-1", bucket: "s3://bucket?region=eu-west-1", without: "s3://bucket/events/dt=2024-0*/*.parquet"},
		// The README's form, unencoded: the query holds '/' and ':'.
		{name: "S3EndpointUnencoded", in: "s3://bucket/prefix/?endpoint=http://127.0.0.1:9000&use_path_style=true", scheme: "s3", host: "bucket", path: "prefix/",
			query: "endpoint=http://127.0.0.1:9000&use_path_style=true", bucket: "s3://bucket?endpoint=http%3A%2F%2F127.0.0.1%3A9000&use_path_style=true", without: "s3://bucket/prefix/"},
		{name: "S3EndpointEncoded", in: "s3://bucket/prefix?endpoint=http%3A%2F%2F127.0.0.1%3A9000", scheme: "s3", host: "bucket", path: "prefix",
			query: "endpoint=http%3A%2F%2F127.0.0.1%3A9000", bucket: "s3://bucket?endpoint=http%3A%2F%2F127.0.0.1%3A9000", without: "s3://bucket/prefix"},
		{name: "S3EndpointWithQuery", in: "s3://b/p?endpoint=http://h:9000/x?y=1&region=r", scheme: "s3", host: "b", path: "p", query: "endpoint=http://h:9000/x?y=1&region=r", bucket: "s3://b?endpoint=http%3A%2F%2Fh%3A9000%2Fx%3Fy%3D1&region=r", without: "s3://b/p"},
		{name: "GlobQuestionMark", in: "s3://b/part-?.csv", scheme: "s3", host: "b", path: "part-?.csv", bucket: "s3://b", without: "s3://b/part-?.csv"},
		{name: "GlobQuestionMarkAndQuery", in: "gs://b/part-?.csv?x=1", scheme: "gs", host: "b", path: "part-?.csv", query: "x=1", bucket: "gs://b?x=1", without: "gs://b/part-?.csv"},
		{name: "BucketOnly", in: "azblob://container", scheme: "azblob", host: "container", bucket: "azblob://container", without: "azblob://container/"},
		{name: "Azurite", in: "azblob://container/prefix?localemu=true&protocol=http&domain=127.0.0.1:10000", scheme: "azblob", host: "container", path: "prefix",
			query: "localemu=true&protocol=http&domain=127.0.0.1:10000", bucket: "azblob://container?domain=127.0.0.1%3A10000&localemu=true&protocol=http", without: "azblob://container/prefix"},
		{name: "Endpoint", in: "http://127.0.0.1:8080", scheme: "http", host: "127.0.0.1:8080", without: "http://127.0.0.1:8080"},
		{name: "EndpointUserinfo", in: "https://user:p%40ss@host/base", scheme: "https", host: "host", path: "/base", user: "user:p%40ss", without: "https://host/base"},
		{name: "ErrNoBucket", in: "s3:///key", wantErr: location.ErrSyntax},
		{name: "ErrFileHost", in: "file://host/x", wantErr: location.ErrSyntax},
		{name: "ErrEmpty", in: "", wantErr: location.ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := location.Parse(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Parse(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			user := ""
			if l.User != nil {
				user = l.User.String()
			}
			if l.Scheme != tt.scheme || l.Host != tt.host || l.Path != tt.path || l.RawQuery != tt.query || user != tt.user {
				t.Fatalf("Parse(%q) = scheme %q host %q path %q query %q user %q, want %q %q %q %q %q",
					tt.in, l.Scheme, l.Host, l.Path, l.RawQuery, user, tt.scheme, tt.host, tt.path, tt.query, tt.user)
			}
			if tt.bucket != "" {
				if got := l.Bucket(); got != tt.bucket {
					t.Fatalf("Bucket() = %q, want %q", got, tt.bucket)
				}
			}
			if got := l.WithoutQuery(); got != tt.without {
				t.Fatalf("WithoutQuery() = %q, want %q", got, tt.without)
			}
			if got := location.Display(tt.in); got != tt.without {
				t.Fatalf("Display() = %q, want %q", got, tt.without)
			}
		})
	}
}

func TestDisplayUnparsable(t *testing.T) {
	if got, want := location.Display("s3://u:pw@/k?token=x"), "s3:///k"; got != want {
		t.Fatalf("Display = %q, want %q", got, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"s3://b/p?endpoint=http://h:1&x=y", "./a?b", "file:///x", "http://u:p@h/x?y", "gs://b/[a-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := location.Parse(s)
		if err != nil {
			return
		}
		_ = l.Bucket()
		_ = l.WithoutQuery()
		_ = location.Display(s)
	})
}
