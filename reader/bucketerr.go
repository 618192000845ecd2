package reader

import (
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"gocloud.dev/gcerrors"
)

// Sentinel errors of a bucket that cannot be listed.
var (
	// ErrAccessDenied: the storage server refused the credentials, or
	// they may not list the bucket.
	ErrAccessDenied = errors.New("access denied")
	// ErrNoBucket: the bucket (an Azure container) does not exist.
	ErrNoBucket = errors.New("bucket does not exist")
)

// BucketError is a bucket that cannot be listed because of the credentials
// or because it does not exist. Its message names the bucket and says what
// to check, instead of the SDK's dump of the HTTP exchange; errors.Is
// matches Kind and the SDK's error.
type BucketError struct {
	URL    string // the source, without its query
	Bucket string
	Kind   error  // ErrAccessDenied or ErrNoBucket
	Status int    // HTTP status, 0 when unknown
	Code   string // the server's error code, "" when unknown
	Err    error
}

func (e *BucketError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "list %s: ", e.URL)
	scheme, _, _ := strings.Cut(e.URL, "://")
	if e.Kind == ErrAccessDenied {
		fmt.Fprintf(&b, "the storage server refused access to bucket %q", e.Bucket)
	} else {
		fmt.Fprintf(&b, "bucket %q does not exist", e.Bucket)
	}
	if e.Status != 0 || e.Code != "" {
		b.WriteString(" (")
		if e.Status != 0 {
			fmt.Fprintf(&b, "HTTP %d", e.Status)
		}
		if e.Status != 0 && e.Code != "" {
			b.WriteByte(' ')
		}
		b.WriteString(e.Code)
		b.WriteByte(')')
	}
	if e.Kind == ErrAccessDenied {
		b.WriteString(": check the credentials")
		switch scheme {
		case "s3":
			b.WriteString(" (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the instance role)")
		case "gs":
			b.WriteString(" (GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth application-default login`)")
		case "azblob":
			b.WriteString(" (AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, or the Azure credential chain)")
		}
		b.WriteString(" and that they may list the bucket")
	} else {
		b.WriteString(": check the bucket name")
		if scheme == "s3" {
			b.WriteString(", and the endpoint and region of the URL")
		} else if scheme == "azblob" {
			b.WriteString(" (the container) and the storage account")
		}
	}
	return b.String()
}

func (e *BucketError) Unwrap() []error { return []error{e.Kind, e.Err} }

// bucketError returns a *BucketError when err says that src's bucket is
// missing or refuses the credentials, otherwise nil.
func bucketError(src source, err error) error {
	status, code := httpStatus(err)
	var kind error
	switch {
	case status == 401 || status == 403 || gcerrors.Code(err) == gcerrors.PermissionDenied:
		kind = ErrAccessDenied
	case status == 404 || gcerrors.Code(err) == gcerrors.NotFound:
		// Listing a prefix of an existing bucket never fails with "not
		// found": the bucket itself is missing.
		kind = ErrNoBucket
	default:
		return nil
	}
	bucket := strings.TrimSuffix(src.base, "/")
	if _, rest, ok := strings.Cut(bucket, "://"); ok {
		bucket = rest
	}
	return &BucketError{URL: src.display, Bucket: bucket, Kind: kind, Status: status, Code: code, Err: err}
}

// httpStatus digs the HTTP status and the server's error code out of an
// SDK error (AWS's smithy errors and Azure's ResponseError; GCS errors are
// classified by gocloud's codes).
func httpStatus(err error) (int, string) {
	var az *azcore.ResponseError
	if errors.As(err, &az) {
		return az.StatusCode, az.ErrorCode
	}
	var status int
	var hs interface{ HTTPStatusCode() int }
	if errors.As(err, &hs) {
		status = hs.HTTPStatusCode()
	}
	var code string
	var api interface{ ErrorCode() string }
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	return status, code
}
