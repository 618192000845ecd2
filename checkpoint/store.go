package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"gocloud.dev/blob"

	"github.com/backfillhq/backfill/internal/location"
)

// File names inside a store (under the shard's key prefix, if any).
const (
	// StateFile holds the newest state.
	StateFile = "state.json"
	// PrevFile holds the state saved before the newest one; Load falls
	// back to it when StateFile is missing or unreadable.
	PrevFile = StateFile + ".prev"
	// LockFile is the lock of a local store (flock'ed, with owner info).
	LockFile = "lock"
	// LockObject is the lock object of a bucket store.
	LockObject = "lock.json"
)

// LogKeyComponent and friends are the slog attribute keys of this package.
const (
	LogKeyComponent = "component"
	LogKeyStore     = "store"
	LogKeyError     = "err"
	LogKeyOwner     = "owner"
)

var (
	// ErrNoCheckpoint means the store holds no state yet: a fresh run.
	ErrNoCheckpoint = errors.New("no checkpoint")
	// ErrBadName means Options.Name is not a single safe path segment.
	ErrBadName = errors.New("invalid checkpoint name")
)

// Options configure a Store. The zero value is valid.
type Options struct {
	// Name is the key segment this store reads and writes under, so shards
	// of one job share a location without clashing (see ShardName). Empty
	// means the root of the location. Letters, digits, '.', '_' and '-'.
	Name string
	// Bucket, if set, is used instead of opening the URL given to Open
	// (which is then only used in messages). Close does not close it.
	Bucket *blob.Bucket
	// Logger receives warnings (fallback to the previous state, stale lock
	// take-over). Default slog.Default().
	Logger *slog.Logger
}

// Store persists States durably on a local directory or in a bucket.
//
// Local directory: each Save writes a temp file in the same directory,
// fsyncs and closes it, renames the current state to PrevFile, renames the
// temp file to StateFile and fsyncs the directory, so a crash at any point
// leaves a complete newest or previous state. Leftover temp files are
// ignored (and removed when the lock is taken).
//
// Bucket (s3://, gs://, azblob://, mem:// ...): each Save copies StateFile
// to PrevFile and writes StateFile as one whole object, which object
// stores publish atomically.
//
// A Store is meant to be used by one goroutine (the pipeline's checkpoint
// saver); Lock keeps other processes away.
type Store struct {
	name  string
	where string
	be    backend
	log   *slog.Logger
}

// backend is the storage behind a Store. Keys are slash-separated and
// relative to the store's location.
type backend interface {
	read(ctx context.Context, key string) ([]byte, error) // fs.ErrNotExist when missing
	save(ctx context.Context, dir string, data []byte) error
	keys(ctx context.Context) ([]string, error)                // every key, for LoadAll
	create(ctx context.Context, key string, data []byte) error // ErrExist when key exists
	lock(ctx context.Context, s *Store, opts LockOptions) (*Lock, error)
	close() error
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]*$`)

// ShardName returns the conventional Options.Name of shard i of n,
// "shard-2-of-3".
func ShardName(i, n int) string { return fmt.Sprintf("shard-%d-of-%d", i, n) }

// Open opens the checkpoint location loc: a local directory path, a
// file:// URL (treated as a local directory, with fsync and flock), or a
// bucket URL understood by gocloud.dev/blob, whose path is used as a key
// prefix ("s3://bucket/state/job1?region=us-east-1"). The blob drivers for
// s3, gs, azblob and mem are registered by this package.
func Open(ctx context.Context, loc string, opts Options) (*Store, error) {
	if opts.Name != "" && !nameRE.MatchString(opts.Name) {
		return nil, fmt.Errorf("%w: %q", ErrBadName, opts.Name)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Store{name: opts.Name, log: log.With(LogKeyComponent, "checkpoint")}
	if opts.Bucket != nil {
		s.where = loc
		if s.where == "" {
			s.where = "bucket"
		}
		s.be = &bucketBackend{b: opts.Bucket}
		s.log = s.log.With(LogKeyStore, s.where)
		return s, nil
	}
	if loc == "" {
		return nil, errors.New("open checkpoint: empty location")
	}
	l, err := location.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint: %w", err)
	}
	switch {
	case l.Scheme == "":
		s.where = loc
		s.be = &localBackend{dir: loc}
		s.log = s.log.With(LogKeyStore, s.where)
		return s, nil
	case l.Scheme == "file":
		if l.RawQuery != "" {
			return nil, fmt.Errorf("open checkpoint %s: file URL must be file:///path without query", l.WithoutQuery())
		}
		s.where = l.Path
		s.be = &localBackend{dir: l.Path}
		s.log = s.log.With(LogKeyStore, s.where)
		return s, nil
	case l.User != nil:
		return nil, fmt.Errorf("open checkpoint %s: a bucket URL takes no user or password (credentials come from the environment)", l.WithoutQuery())
	}
	prefix := strings.Trim(l.Path, "/")
	s.where = strings.TrimSuffix(l.WithoutQuery(), "/")
	b, err := blob.OpenBucket(ctx, l.Bucket())
	if err != nil {
		return nil, fmt.Errorf("open checkpoint %s: %w", s.where, err)
	}
	s.be = &bucketBackend{b: b, owned: b}
	if prefix != "" {
		s.be = &bucketBackend{b: blob.PrefixedBucket(b, prefix+"/"), owned: b}
	}
	s.log = s.log.With(LogKeyStore, s.where)
	return s, nil
}

// String returns the store's location and name, for messages.
func (s *Store) String() string {
	if s.name == "" {
		return s.where
	}
	return s.where + " (" + s.name + ")"
}

// Name returns Options.Name.
func (s *Store) Name() string { return s.name }

func joinKey(dir, file string) string {
	if dir == "" {
		return file
	}
	return dir + "/" + file
}

// Close releases the store's resources (not its lock, see Lock.Release).
func (s *Store) Close() error { return s.be.close() }

// Save durably writes st as the newest state and keeps the one it replaces
// as the previous state. st.Version is written as CurrentVersion.
func (s *Store) Save(ctx context.Context, st *State) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	data, err := Marshal(st)
	if err != nil {
		return err
	}
	if err := s.be.save(ctx, s.name, data); err != nil {
		return fmt.Errorf("save checkpoint %s: %w", s, err)
	}
	return nil
}

// Load reads the newest state. If it is missing (a crash between the two
// renames of a local Save) or corrupt, the previous state is returned
// instead, a warning is logged and State.FellBack is set so that the
// caller can say what it sends again. It returns ErrNoCheckpoint when there is
// neither, an error wrapping ErrVersion for a state written by a newer
// backfill, and ErrCorrupt when both are unreadable.
func (s *Store) Load(ctx context.Context) (*State, error) {
	return s.load(ctx, s.name)
}

func (s *Store) load(ctx context.Context, name string) (*State, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load checkpoint: %w", err)
	}
	curKey, prevKey := joinKey(name, StateFile), joinKey(name, PrevFile)
	var curErr error
	data, err := s.be.read(ctx, curKey)
	switch {
	case err == nil:
		st, err := Unmarshal(data)
		if err == nil || errors.Is(err, ErrVersion) {
			if err != nil {
				return nil, fmt.Errorf("load checkpoint %s: %w", curKey, err)
			}
			return st, nil
		}
		curErr = err
	case isNotExist(err):
	default:
		return nil, fmt.Errorf("load checkpoint %s: %w", curKey, err)
	}
	data, err = s.be.read(ctx, prevKey)
	switch {
	case isNotExist(err) && curErr == nil:
		return nil, ErrNoCheckpoint
	case isNotExist(err):
		return nil, fmt.Errorf("load checkpoint %s: %w", curKey, curErr)
	case err != nil:
		return nil, fmt.Errorf("load checkpoint %s: %w", prevKey, err)
	}
	st, err := Unmarshal(data)
	if err != nil {
		if curErr != nil {
			return nil, fmt.Errorf("load checkpoint %s: %w (previous state: %v)", curKey, curErr, err)
		}
		return nil, fmt.Errorf("load checkpoint %s: %w", prevKey, err)
	}
	if curErr != nil {
		s.log.Warn("newest checkpoint unreadable, resuming from the previous one", "key", curKey, LogKeyError, curErr)
	} else {
		s.log.Info("newest checkpoint missing, resuming from the previous one", "key", prevKey)
	}
	// The caller says what the fallback costs (it knows the save
	// interval): the previous state is at most one save older.
	st.FellBack, st.NewestErr = true, curErr
	return st, nil
}

// LoadAll loads the state of every name (shard) saved at the store's
// location, keyed by name ("" for a state saved without a name). Use it to
// aggregate the shards of a job. A shard whose state cannot be loaded makes
// LoadAll fail.
func (s *Store) LoadAll(ctx context.Context) (map[string]*State, error) {
	keys, err := s.be.keys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints %s: %w", s.where, err)
	}
	names := map[string]bool{}
	for _, k := range keys {
		dir, file := "", k
		if i := strings.LastIndexByte(k, '/'); i >= 0 {
			dir, file = k[:i], k[i+1:]
		}
		if (file == StateFile || file == PrevFile) && !strings.Contains(dir, "/") {
			names[dir] = true
		}
	}
	out := make(map[string]*State, len(names))
	for name := range names {
		st, err := s.load(ctx, name)
		if err != nil {
			return nil, err
		}
		out[name] = st
	}
	return out, nil
}
