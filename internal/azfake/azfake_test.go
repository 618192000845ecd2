package azfake_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"
	"gocloud.dev/gcerrors"

	"github.com/backfillhq/backfill/internal/azfake"
)

// seed is the content of the "events" container of most tests.
var seed = map[string][]byte{
	"2024/01/a.jsonl":    []byte("{\"a\":1}\n{\"a\":2}\n"),
	"2024/01/b.jsonl.gz": []byte("not really gzip"),
	"2024/02/c.parquet":  []byte("0123456789abcdefghijklmnopqrstuvwxyz"),
	"2024/top.csv":       []byte("x,y\n1,2\n"),
	"2025/d.jsonl":       []byte("{}\n"),
	"weird name ü+.json": []byte("[]"),
}

// noRetry keeps the SDK from retrying (and sleeping) on errors.
var noRetry = policy.RetryOptions{MaxRetries: -1}

// openBucket serves seed in container "events" and opens it through
// gocloud's azureblob driver on an anonymous container client.
func openBucket(t *testing.T) (*azfake.Server, *blob.Bucket) {
	t.Helper()
	s := azfake.New(map[string]map[string][]byte{"events": seed})
	t.Cleanup(s.Close)
	client, err := container.NewClientWithNoCredential(s.ContainerURL("events"), &container.ClientOptions{ClientOptions: policy.ClientOptions{Retry: noRetry}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := azureblob.OpenBucket(context.Background(), client, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return s, b
}

func sortedKeys(m map[string][]byte, prefix string) []string {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// listAll lists through every page of size pageSize, returning "key" for
// blobs and "key/" (IsDir) for prefixes.
func listAll(t *testing.T, b *blob.Bucket, pageSize int, opts *blob.ListOptions) []string {
	t.Helper()
	var got []string
	var token []byte = blob.FirstPageToken
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("listing does not end")
		}
		objs, next, err := b.ListPage(context.Background(), token, pageSize, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) > pageSize {
			t.Fatalf("page of %d entries, asked for %d", len(objs), pageSize)
		}
		for _, o := range objs {
			got = append(got, o.Key)
		}
		if len(next) == 0 {
			return got
		}
		token = next
	}
}

func TestList(t *testing.T) {
	_, b := openBucket(t)
	all := sortedKeys(seed, "")
	tests := []struct {
		name     string
		pageSize int
		opts     *blob.ListOptions
		want     []string
	}{
		{"All", 1000, nil, all},
		{"Paged", 2, nil, all},
		{"PageOfOne", 1, nil, all},
		{"Prefix", 2, &blob.ListOptions{Prefix: "2024/"}, sortedKeys(seed, "2024/")},
		{"PrefixNoMatch", 10, &blob.ListOptions{Prefix: "1999/"}, nil},
		{"Delimiter", 1000, &blob.ListOptions{Delimiter: "/"}, []string{"2024/", "2025/", "weird name ü+.json"}},
		{"DelimiterPaged", 1, &blob.ListOptions{Delimiter: "/"}, []string{"2024/", "2025/", "weird name ü+.json"}},
		{"PrefixDelimiterPaged", 1, &blob.ListOptions{Prefix: "2024/", Delimiter: "/"}, []string{"2024/01/", "2024/02/", "2024/top.csv"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := listAll(t, b, tt.pageSize, tt.opts); !slices.Equal(got, tt.want) {
				t.Errorf("listed %q, want %q", got, tt.want)
			}
		})
	}
}

func TestListAttributes(t *testing.T) {
	_, b := openBucket(t)
	it := b.List(&blob.ListOptions{Prefix: "2024/01/a"})
	o, err := it.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	data := seed["2024/01/a.jsonl"]
	sum := md5.Sum(data)
	if o.Key != "2024/01/a.jsonl" || o.Size != int64(len(data)) || !bytes.Equal(o.MD5, sum[:]) || o.ModTime.IsZero() || o.IsDir {
		t.Errorf("listed %+v, want key 2024/01/a.jsonl, size %d, md5 %x, a mod time", o, len(data), sum)
	}
	if _, err := it.Next(context.Background()); err != io.EOF {
		t.Errorf("second Next: %v, want io.EOF", err)
	}
}

func TestRead(t *testing.T) {
	s, b := openBucket(t)
	ctx := context.Background()
	const key = "2024/02/c.parquet"
	data := seed[key]
	size := int64(len(data))
	tests := []struct {
		name           string
		offset, length int64
		want           string
	}{
		{"Whole", 0, -1, string(data)},
		{"Head", 0, 10, string(data[:10])},
		{"Middle", 10, 5, string(data[10:15])},
		{"Tail", size - 8, 8, string(data[size-8:])},
		{"ToEnd", 30, -1, string(data[30:])},
		{"PastEnd", 30, 100, string(data[30:])},
		{"Empty", 5, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := b.NewRangeReader(ctx, key, tt.offset, tt.length, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("read %q, want %q", got, tt.want)
			}
			if r.Size() != size {
				t.Errorf("Size %d, want %d", r.Size(), size)
			}
			if r.ModTime().IsZero() {
				t.Error("no ModTime")
			}
		})
	}
	if st := s.Stats(); st.RangeGets < 5 {
		t.Errorf("%d ranged GETs served, want at least 5", st.RangeGets)
	}

	a, err := b.Attributes(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(data)
	if a.Size != size || a.ETag == "" || !bytes.Equal(a.MD5, sum[:]) || a.ModTime.IsZero() || a.CreateTime.IsZero() {
		t.Errorf("attributes %+v, want size %d, an ETag, md5 %x, times", a, size, sum)
	}
}

func TestNotFound(t *testing.T) {
	_, b := openBucket(t)
	ctx := context.Background()
	if _, err := b.ReadAll(ctx, "2024/missing.jsonl"); gcerrors.Code(err) != gcerrors.NotFound {
		t.Errorf("ReadAll of a missing blob: %v (code %v), want NotFound", err, gcerrors.Code(err))
	}
	if _, err := b.Attributes(ctx, "2024/missing.jsonl"); gcerrors.Code(err) != gcerrors.NotFound {
		t.Errorf("Attributes of a missing blob: %v (code %v), want NotFound", err, gcerrors.Code(err))
	}
	if _, err := b.NewRangeReader(ctx, "2024/01/a.jsonl", 1000, 10, nil); err == nil {
		t.Error("a range past the end was served")
	}
}

func TestWrite(t *testing.T) {
	s, b := openBucket(t)
	ctx := context.Background()
	small := []byte("hello\n")
	large := bytes.Repeat([]byte("0123456789abcdef"), 160_000) // 2.5 MB: three 1 MB blocks
	tests := []struct {
		name string
		data []byte
		opts *blob.WriterOptions
	}{
		{"PutBlob", small, &blob.WriterOptions{ContentType: "text/plain", Metadata: map[string]string{"origin": "test"}}},
		{"Blocks", large, &blob.WriterOptions{BufferSize: 1 << 20}},
		{"Empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "out/" + tt.name
			if err := b.WriteAll(ctx, key, tt.data, tt.opts); err != nil {
				t.Fatal(err)
			}
			if got, ok := s.Get("events", key); !ok || !bytes.Equal(got, tt.data) {
				t.Fatalf("stored %d bytes (exists %v), want %d", len(got), ok, len(tt.data))
			}
			got, err := b.ReadAll(ctx, key)
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Fatalf("read back %d bytes, err %v; want %d", len(got), err, len(tt.data))
			}
			if tt.opts != nil && tt.opts.ContentType != "" {
				a, err := b.Attributes(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				if a.ContentType != tt.opts.ContentType || a.Metadata["origin"] != "test" {
					t.Errorf("content type %q metadata %v, want %q and origin=test", a.ContentType, a.Metadata, tt.opts.ContentType)
				}
			}
		})
	}

	err := b.WriteAll(ctx, "out/PutBlob", []byte("again"), &blob.WriterOptions{IfNotExist: true})
	if gcerrors.Code(err) != gcerrors.FailedPrecondition {
		t.Errorf("IfNotExist over an existing blob: %v, want FailedPrecondition", err)
	}
	if err := b.Delete(ctx, "out/PutBlob"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Exists(ctx, "out/PutBlob"); ok || err != nil {
		t.Errorf("after Delete: exists %v, err %v", ok, err)
	}
	if err := b.Delete(ctx, "out/PutBlob"); gcerrors.Code(err) != gcerrors.NotFound {
		t.Errorf("second Delete: %v, want NotFound", err)
	}
}

// TestURLOpener opens the fake the way an azblob:// URL does with
// localemu=true: path-style /ACCOUNT/CONTAINER URLs, requests signed with a
// shared key that the fake ignores.
func TestURLOpener(t *testing.T) {
	s := azfake.New(map[string]map[string][]byte{"events": seed})
	defer s.Close()
	host := strings.TrimPrefix(s.URL, "http://")
	opener := &azureblob.URLOpener{
		MakeClient: func(svc azureblob.ServiceURL, c azureblob.ContainerName) (*container.Client, error) {
			cred, err := azblob.NewSharedKeyCredential("devaccount", base64.StdEncoding.EncodeToString([]byte("not a real key")))
			if err != nil {
				return nil, err
			}
			u, err := url.JoinPath(string(svc), string(c))
			if err != nil {
				return nil, err
			}
			return container.NewClientWithSharedKeyCredential(u, cred, &container.ClientOptions{ClientOptions: policy.ClientOptions{Retry: noRetry}})
		},
		ServiceURLOptions: azureblob.ServiceURLOptions{AccountName: "devaccount"},
	}
	mux := new(blob.URLMux)
	mux.RegisterBucket(azureblob.Scheme, opener)
	ctx := context.Background()
	b, err := mux.OpenBucket(ctx, fmt.Sprintf("azblob://events?localemu=true&protocol=http&domain=%s", host))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := listAll(t, b, 2, nil); !slices.Equal(got, sortedKeys(seed, "")) {
		t.Errorf("listed %q", got)
	}
	got, err := b.ReadAll(ctx, "weird name ü+.json")
	if err != nil || string(got) != "[]" {
		t.Errorf("read %q, %v", got, err)
	}
	if _, err := mux.OpenBucket(ctx, fmt.Sprintf("azblob://nope?localemu=true&protocol=http&domain=%s", host)); err != nil {
		t.Fatal(err) // opening is lazy; the first request fails
	}
}

// TestHTTP checks the wire details the SDK tolerates but real clients (and
// other SDK versions) may rely on.
func TestHTTP(t *testing.T) {
	s := azfake.New(map[string]map[string][]byte{"events": seed})
	defer s.Close()
	blobURL := s.ContainerURL("events") + "/2024/02/c.parquet"
	tests := []struct {
		name       string
		method     string
		url        string
		header     map[string]string
		wantStatus int
		wantHeader map[string]string
		wantBody   string
	}{
		{"Get", "GET", blobURL, nil, 200, map[string]string{"x-ms-blob-type": "BlockBlob", "Content-Length": "36"}, string(seed["2024/02/c.parquet"])},
		{"Head", "HEAD", blobURL, nil, 200, map[string]string{"Content-Length": "36", "x-ms-blob-type": "BlockBlob"}, ""},
		{"XMSRange", "GET", blobURL, map[string]string{"x-ms-range": "bytes=2-4"}, 206, map[string]string{"Content-Range": "bytes 2-4/36"}, "234"},
		{"Range", "GET", blobURL, map[string]string{"Range": "bytes=34-"}, 206, map[string]string{"Content-Range": "bytes 34-35/36"}, "yz"},
		{"XMSRangeWins", "GET", blobURL, map[string]string{"x-ms-range": "bytes=0-0", "Range": "bytes=1-1"}, 206, nil, "0"},
		{"RangePastEnd", "GET", blobURL, map[string]string{"x-ms-range": "bytes=36-"}, 416, map[string]string{"x-ms-error-code": "InvalidRange"}, ""},
		{"IfMatchStale", "GET", blobURL, map[string]string{"If-Match": `"0xdead"`}, 412, map[string]string{"x-ms-error-code": "ConditionNotMet"}, ""},
		{"BlobNotFound", "GET", blobURL + "x", nil, 404, map[string]string{"x-ms-error-code": "BlobNotFound"}, ""},
		{"HeadNotFound", "HEAD", blobURL + "x", nil, 404, map[string]string{"x-ms-error-code": "BlobNotFound"}, ""},
		{"ContainerNotFound", "GET", s.URL + "/nope/x", nil, 404, map[string]string{"x-ms-error-code": "ContainerNotFound"}, ""},
		{"AccountPath", "GET", s.URL + "/devaccount/events/2024/top.csv", nil, 200, nil, "x,y\n1,2\n"},
		{"BadMaxResults", "GET", s.ContainerURL("events") + "?restype=container&comp=list&maxresults=0", nil, 400, nil, ""},
		{"PutNotBlockBlob", "PUT", blobURL, map[string]string{"x-ms-blob-type": "AppendBlob"}, 400, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			for k, v := range tt.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
			if resp.StatusCode >= 400 && tt.method == "GET" && !strings.Contains(string(body), "<Code>") {
				t.Errorf("error without an XML body: %s", body)
			}
		})
	}
}
