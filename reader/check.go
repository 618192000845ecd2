package reader

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// ErrChanged: an object is no longer the version that was listed (its
// size, MD5 or modification time differs).
var ErrChanged = errors.New("object changed since it was listed")

// Check reports whether obj, as listed, is still the stored object: nil
// when its size and MD5 (or, without an MD5 on either side, its
// modification time to the second) are those of the listing; an error
// wrapping ErrChanged that says what differs; ErrNotFound when it is gone;
// another error when it cannot be looked at. It reads the object's
// metadata only (os.Stat, a HEAD request).
//
// Check is how records re-read from an object (for the dead-letter entry
// of an event the server refused) are known to come from the content that
// was sent. Modification times are compared to the second because
// listings and HEAD answers do not carry the same precision (S3's
// Last-Modified header has none below the second).
func (r *Reader) Check(ctx context.Context, obj Object) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if obj.NotRead != "" {
		return fmt.Errorf("%w: %s", ErrNotReadable, obj.NotRead)
	}
	var (
		size int64
		md5  string
		mod  time.Time
	)
	if obj.bucket == "" && strings.HasPrefix(obj.URL, "file://") {
		fi, err := os.Stat(obj.Key)
		if err != nil {
			return checkError(obj, err)
		}
		size, mod = fi.Size(), fi.ModTime()
	} else {
		st, err := r.store(ctx, obj)
		if err != nil {
			return err
		}
		bs, ok := st.(*bucketStore)
		if !ok {
			return fmt.Errorf("check %s: not a bucket object", obj.URL)
		}
		a, err := bs.b.Attributes(ctx, bs.key)
		if err != nil {
			return checkError(obj, err)
		}
		size, mod = a.Size, a.ModTime
		if len(a.MD5) > 0 {
			md5 = hex.EncodeToString(a.MD5)
		}
	}
	switch {
	case size != obj.Size:
		return fmt.Errorf("%w: %s was %d bytes, now %d", ErrChanged, obj.URL, obj.Size, size)
	case md5 != "" && obj.MD5 != "":
		if md5 != obj.MD5 {
			return fmt.Errorf("%w: %s had MD5 %s, now %s", ErrChanged, obj.URL, obj.MD5, md5)
		}
	case !mod.IsZero() && !obj.ModTime.IsZero() && !mod.Truncate(time.Second).Equal(obj.ModTime.Truncate(time.Second)):
		return fmt.Errorf("%w: %s was modified at %s, now %s", ErrChanged, obj.URL,
			obj.ModTime.UTC().Format(time.RFC3339Nano), mod.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

func checkError(obj Object, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("check %s: %w: %w", obj.URL, ErrNotFound, err)
	}
	return fmt.Errorf("check %s: %w", obj.URL, err)
}
