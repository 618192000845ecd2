package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// bucketBackend stores states as whole objects in a gocloud bucket.
type bucketBackend struct {
	b     *blob.Bucket
	owned *blob.Bucket // closed by close; nil when the caller owns b
}

// translate maps a gocloud not-found error to fs.ErrNotExist.
func translate(err error) error {
	if err != nil && gcerrors.Code(err) == gcerrors.NotFound {
		return fmt.Errorf("%w: %v", fs.ErrNotExist, err)
	}
	return err
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

func (k *bucketBackend) read(ctx context.Context, key string) ([]byte, error) {
	data, err := k.b.ReadAll(ctx, key)
	return data, translate(err)
}

func (k *bucketBackend) save(ctx context.Context, name string, data []byte) error {
	cur := joinKey(name, StateFile)
	// Keep the state being replaced. Object writes are atomic, so a crash
	// leaves either the old or the new StateFile.
	if err := translate(k.b.Copy(ctx, joinKey(name, PrevFile), cur, nil)); err != nil && !isNotExist(err) {
		return fmt.Errorf("copy to previous: %w", err)
	}
	return k.b.WriteAll(ctx, cur, data, &blob.WriterOptions{ContentType: "application/json"})
}

func (k *bucketBackend) keys(ctx context.Context) ([]string, error) {
	var out []string
	it := k.b.List(nil)
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, o.Key)
	}
}

func (k *bucketBackend) close() error {
	if k.owned == nil {
		return nil
	}
	return k.owned.Close()
}
