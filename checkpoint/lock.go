package checkpoint

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// DefaultLockTTL is how long a bucket lock stays valid without a Refresh.
const DefaultLockTTL = 2 * time.Minute

var (
	// ErrLocked means another run holds the checkpoint's lock. The error is
	// a *LockedError with the owner's details.
	ErrLocked = errors.New("checkpoint is locked")
	// ErrLockLost means a bucket lock was taken over by another run (after
	// it went stale, or by force). The run must stop without saving.
	ErrLockLost = errors.New("checkpoint lock lost")
)

// LockOptions configure Store.Lock. The zero value is valid.
type LockOptions struct {
	// Force takes a bucket lock over even if its owner looks alive. It
	// cannot break a local lock held by a live process (the kernel holds
	// it); it only lets a run proceed when the file system does not support
	// locking.
	Force bool
	// TTL is how long a bucket lock stays valid without Refresh; older
	// locks are stale and taken over. Default DefaultLockTTL.
	TTL time.Duration
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
}

// Owner identifies the holder of a lock.
type Owner struct {
	ID        string    `json:"id"` // random per Lock call
	PID       int       `json:"pid"`
	Host      string    `json:"host"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
}

func (o Owner) String() string {
	if o.ID == "" {
		return "another process"
	}
	return fmt.Sprintf("pid %d on %s (id %s, since %s)", o.PID, o.Host, o.ID, o.Started.UTC().Format(time.RFC3339))
}

// LockedError is returned when a lock is held by someone else. It matches
// ErrLocked with errors.Is.
type LockedError struct {
	Store string
	Owner Owner
	// Age is the time since the owner's last heartbeat (bucket locks only).
	Age   time.Duration
	local bool
}

func (e *LockedError) Error() string {
	if e.local {
		return fmt.Sprintf("checkpoint %s is locked by %s: another backfill run is using it", e.Store, e.Owner)
	}
	return fmt.Sprintf("checkpoint %s is locked by %s, last heartbeat %s ago: another backfill run is using it; "+
		"wait for it, or use --force to take the lock over", e.Store, e.Owner, e.Age.Round(time.Second))
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Lock is a held checkpoint lock. Bucket locks must be refreshed well
// within their TTL (say every TTL/4) with Refresh; local locks are held by
// the kernel until Release or process exit.
type Lock struct {
	mu       sync.Mutex
	owner    Owner
	previous *Owner
	released bool
	refresh  func(ctx context.Context) error
	release  func(ctx context.Context) error
}

// Owner returns the lock's owner record (this run).
func (l *Lock) Owner() Owner {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.owner
}

// TookOver returns the previous owner when this lock was taken over from a
// stale (dead process, expired heartbeat) or forced lock.
func (l *Lock) TookOver() (Owner, bool) {
	if l.previous == nil {
		return Owner{}, false
	}
	return *l.previous, true
}

// Refresh renews a bucket lock's heartbeat. It returns an error wrapping
// ErrLockLost if another run took the lock over. It is a no-op for local
// locks.
func (l *Lock) Refresh(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released || l.refresh == nil {
		return nil
	}
	return l.refresh(ctx)
}

// Release gives the lock up. It is idempotent.
func (l *Lock) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	l.released = true
	return l.release(ctx)
}

func newOwner(now time.Time) Owner {
	var id [8]byte
	rand.Read(id[:])
	host, _ := os.Hostname()
	return Owner{ID: hex.EncodeToString(id[:]), PID: os.Getpid(), Host: host, Started: now, Heartbeat: now}
}

// Lock takes the store's lock (per Name, so shards lock independently), so
// that two runs never use the same checkpoint at once. It returns a
// *LockedError (ErrLocked) with the owner's details if another run holds
// it. A lock left by a dead process is taken over and logged.
func (s *Store) Lock(ctx context.Context, opts LockOptions) (*Lock, error) {
	if opts.TTL <= 0 {
		opts.TTL = DefaultLockTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lock checkpoint: %w", err)
	}
	l, err := s.be.lock(ctx, s, opts)
	if err != nil {
		return nil, err
	}
	if prev, ok := l.TookOver(); ok {
		s.log.Warn("took over a stale checkpoint lock", LogKeyOwner, prev.String())
	}
	return l, nil
}

func (l *localBackend) lock(_ context.Context, s *Store, opts LockOptions) (*Lock, error) {
	dir := l.path(s.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock checkpoint: %w", err)
	}
	path := l.path(joinKey(s.name, LockFile))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock checkpoint: %w", err)
	}
	var prev *Owner
	if data, err := readAllFile(f); err == nil && len(data) > 0 {
		var o Owner
		if json.Unmarshal(data, &o) == nil {
			prev = &o
		}
	}
	locked := true
	if err := flock(f); err != nil {
		if errors.Is(err, errWouldBlock) {
			f.Close()
			le := &LockedError{Store: s.String(), local: true}
			if prev != nil {
				le.Owner = *prev
			}
			return nil, le
		}
		if !opts.Force {
			f.Close()
			return nil, fmt.Errorf("lock checkpoint %s: %w (use --force if this file system cannot lock)", path, err)
		}
		s.log.Warn("cannot lock the checkpoint; continuing because of --force", LogKeyError, err)
		locked = false
	}
	// Holding the lock: any owner record left in the file belongs to a run
	// that ended without Release (killed); the kernel released its flock.
	if locked {
		if data, err := readAllFile(f); err == nil && len(data) > 0 {
			var o Owner
			if json.Unmarshal(data, &o) == nil {
				prev = &o
			}
		} else {
			prev = nil
		}
	}
	me := newOwner(opts.Now())
	data, _ := json.Marshal(me)
	if err := writeFile(f, data); err != nil {
		if locked {
			funlock(f)
		}
		f.Close()
		return nil, fmt.Errorf("lock checkpoint %s: %w", path, err)
	}
	l.removeTemps(s.name)
	return &Lock{
		owner:    me,
		previous: prev,
		release: func(context.Context) error {
			err := f.Truncate(0)
			if locked {
				if e := funlock(f); err == nil {
					err = e
				}
			}
			if e := f.Close(); err == nil {
				err = e
			}
			if err != nil {
				return fmt.Errorf("release checkpoint lock %s: %w", path, err)
			}
			return nil
		},
	}, nil
}

func readAllFile(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, st.Size())
	n, err := f.ReadAt(buf, 0)
	if n == len(buf) {
		err = nil
	}
	return buf[:n], err
}

func writeFile(f *os.File, data []byte) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return err
	}
	return f.Sync()
}

// Bucket locks: a lock object holding the owner and a heartbeat. Creation
// uses a conditional write (if-not-exists) where the driver supports it;
// take-over of a stale lock and Refresh are read-check-write and verified by
// reading back, which is as exclusive as plain object stores allow.
func (k *bucketBackend) lock(ctx context.Context, s *Store, opts LockOptions) (*Lock, error) {
	key := joinKey(s.name, LockObject)
	me := newOwner(opts.Now())
	write := func(ctx context.Context, o Owner, ifNotExist bool) error {
		data, _ := json.Marshal(o)
		return k.b.WriteAll(ctx, key, data, &blob.WriterOptions{ContentType: "application/json", IfNotExist: ifNotExist})
	}
	readOwner := func(ctx context.Context) (Owner, error) {
		var o Owner
		data, err := k.b.ReadAll(ctx, key)
		if err != nil {
			return o, translate(err)
		}
		if err := json.Unmarshal(data, &o); err != nil {
			return o, fmt.Errorf("%w: lock object: %v", ErrCorrupt, err)
		}
		return o, nil
	}
	var prev *Owner
	err := write(ctx, me, true)
	switch c := gcerrors.Code(err); {
	case err == nil:
	case c == gcerrors.FailedPrecondition || c == gcerrors.Unimplemented:
		cur, rerr := readOwner(ctx)
		switch {
		case rerr == nil:
			age := opts.Now().Sub(cur.Heartbeat)
			if age < opts.TTL && !opts.Force {
				return nil, &LockedError{Store: s.String(), Owner: cur, Age: age}
			}
			prev = &cur
		case isNotExist(rerr): // released meanwhile
		case errors.Is(rerr, ErrCorrupt):
			prev = &Owner{}
		default:
			return nil, fmt.Errorf("lock checkpoint %s: %w", s, rerr)
		}
		if err := write(ctx, me, false); err != nil {
			return nil, fmt.Errorf("lock checkpoint %s: %w", s, err)
		}
		got, err := readOwner(ctx)
		if err != nil {
			return nil, fmt.Errorf("lock checkpoint %s: %w", s, err)
		}
		if got.ID != me.ID {
			return nil, &LockedError{Store: s.String(), Owner: got, Age: opts.Now().Sub(got.Heartbeat)}
		}
	default:
		return nil, fmt.Errorf("lock checkpoint %s: %w", s, err)
	}
	lk := &Lock{owner: me, previous: prev}
	lk.refresh = func(ctx context.Context) error {
		cur, err := readOwner(ctx)
		switch {
		case isNotExist(err):
			return fmt.Errorf("%w: %s: lock object vanished", ErrLockLost, s)
		case err != nil:
			return fmt.Errorf("refresh checkpoint lock %s: %w", s, err)
		case cur.ID != lk.owner.ID:
			return fmt.Errorf("%w: %s: taken over by %s", ErrLockLost, s, cur)
		}
		o := lk.owner
		o.Heartbeat = opts.Now()
		if err := write(ctx, o, false); err != nil {
			return fmt.Errorf("refresh checkpoint lock %s: %w", s, err)
		}
		lk.owner = o
		return nil
	}
	lk.release = func(ctx context.Context) error {
		cur, err := readOwner(ctx)
		switch {
		case isNotExist(err):
			return nil
		case err != nil:
			return fmt.Errorf("release checkpoint lock %s: %w", s, err)
		case cur.ID != lk.owner.ID:
			return fmt.Errorf("%w: %s: taken over by %s", ErrLockLost, s, cur)
		}
		if err := k.b.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("release checkpoint lock %s: %w", s, err)
		}
		return nil
	}
	return lk, nil
}
