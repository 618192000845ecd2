package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// ErrExist means a record was already written (see Store.Create).
var ErrExist = errors.New("checkpoint record exists")

// Records are files of a whole job kept at the root of its checkpoint
// location, next to the shards' states: written once, by whichever run
// gets there first, and read by all the others (the job's route plan).

func checkRecordKey(key string) error {
	for _, seg := range strings.Split(key, "/") {
		if !nameRE.MatchString(seg) {
			return fmt.Errorf("%w: record key %q", ErrBadName, key)
		}
	}
	return nil
}

// Create writes data as the record key (slash-separated, relative to the
// location's root, whatever Options.Name is) only if no such record exists;
// otherwise it returns an error wrapping ErrExist and writes nothing. Of
// runs racing to create one record, exactly one succeeds where the storage
// supports conditional writes (local directories, S3, GCS, Azure); on a
// bucket that does not, the last writer wins and Create reads its record
// back to tell.
func (s *Store) Create(ctx context.Context, key string, data []byte) error {
	if err := checkRecordKey(key); err != nil {
		return err
	}
	if err := s.be.create(ctx, key, data); err != nil {
		return fmt.Errorf("create %s in %s: %w", key, s.where, err)
	}
	return nil
}

// ReadRecord returns the record key; an error wrapping os.ErrNotExist when
// there is none.
func (s *Store) ReadRecord(ctx context.Context, key string) ([]byte, error) {
	if err := checkRecordKey(key); err != nil {
		return nil, err
	}
	data, err := s.be.read(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s in %s: %w", key, s.where, err)
	}
	return data, nil
}

// create writes the record to a temp file, fsyncs it and hard-links it to
// its name: link fails if the name exists, so the record appears whole and
// only once.
func (l *localBackend) create(_ context.Context, key string, data []byte) (err error) {
	p := l.path(key)
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+path.Base(key)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, p); err != nil {
		if errors.Is(err, os.ErrExist) {
			return ErrExist
		}
		return err
	}
	return syncDir(dir)
}

func (k *bucketBackend) create(ctx context.Context, key string, data []byte) error {
	err := k.b.WriteAll(ctx, key, data, &blob.WriterOptions{ContentType: "application/json", IfNotExist: true})
	switch gcerrors.Code(err) {
	case gcerrors.OK:
		return nil
	case gcerrors.FailedPrecondition:
		return ErrExist
	case gcerrors.Unimplemented:
		// No conditional writes: check, write, read back.
		if ok, err := k.b.Exists(ctx, key); err != nil {
			return translate(err)
		} else if ok {
			return ErrExist
		}
		if err := k.b.WriteAll(ctx, key, data, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
			return translate(err)
		}
		got, err := k.b.ReadAll(ctx, key)
		if err != nil {
			return translate(err)
		}
		if string(got) != string(data) {
			return ErrExist
		}
		return nil
	}
	return translate(err)
}

// Records returns the keys of the records at the root of the location whose
// names start with prefix, sorted.
func (s *Store) Records(ctx context.Context, prefix string) ([]string, error) {
	keys, err := s.be.keys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.where, err)
	}
	var out []string
	for _, k := range keys {
		if !strings.Contains(k, "/") && strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}
