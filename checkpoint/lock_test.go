package checkpoint_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/backfillhq/backfill/checkpoint"

	"github.com/backfillhq/backfill/internal/testutil"
)

func TestLocalLockContention(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func(name string) *checkpoint.Store {
		s, err := checkpoint.Open(ctx, dir, checkpoint.Options{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := open(""), open("")
	la, err := a.Lock(ctx, checkpoint.LockOptions{})
	if err != nil {
		t.Fatalf("first Lock: %v", err)
	}
	if _, ok := la.TookOver(); ok {
		t.Fatal("fresh lock reports a take-over")
	}
	for _, force := range []bool{false, true} {
		_, err = b.Lock(ctx, checkpoint.LockOptions{Force: force})
		var le *checkpoint.LockedError
		if !errors.Is(err, checkpoint.ErrLocked) || !errors.As(err, &le) {
			t.Fatalf("second Lock (force=%v): %v, want ErrLocked", force, err)
		}
		if le.Owner.PID != os.Getpid() || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
			t.Fatalf("error %q lacks the owner's pid", err)
		}
	}
	// Another shard locks independently.
	ls, err := open("shard-1-of-2").Lock(ctx, checkpoint.LockOptions{})
	if err != nil {
		t.Fatalf("shard Lock: %v", err)
	}
	defer ls.Release(ctx)

	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	lb, err := b.Lock(ctx, checkpoint.LockOptions{})
	if err != nil {
		t.Fatalf("Lock after Release: %v", err)
	}
	if _, ok := lb.TookOver(); ok {
		t.Fatal("lock after a clean Release reports a take-over")
	}
	if err := lb.Refresh(ctx); err != nil {
		t.Fatalf("local Refresh: %v", err)
	}
	lb.Release(ctx)
}

// TestLocalLockStale: a killed run leaves its owner record in the lock file
// but the kernel dropped its flock; the next run takes over and says so.
// Temp files of a Save that crashed are cleaned up.
func TestLocalLockStale(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dead := checkpoint.Owner{ID: "dead", PID: 999999, Host: "h1", Started: t0, Heartbeat: t0}
	data, _ := json.Marshal(dead)
	write(t, filepath.Join(dir, checkpoint.LockFile), data)
	write(t, filepath.Join(dir, "state.json.tmp-42"), []byte("{"))
	s, err := checkpoint.Open(ctx, dir, checkpoint.Options{Logger: quietLogger(new(bytes.Buffer))})
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Lock(ctx, checkpoint.LockOptions{})
	if err != nil {
		t.Fatalf("Lock over a stale file: %v", err)
	}
	defer l.Release(ctx)
	prev, ok := l.TookOver()
	if !ok || prev.ID != "dead" || prev.PID != 999999 {
		t.Fatalf("TookOver=%+v,%v, want the dead owner", prev, ok)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json.tmp-42")); !os.IsNotExist(err) {
		t.Fatalf("leftover temp file not removed: %v", err)
	}
}

// fakeClock is an injectable clock.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func TestBucketLock(t *testing.T) {
	type opener func(t *testing.T) func(name string) *checkpoint.Store
	mem := func(t *testing.T) func(string) *checkpoint.Store {
		b := memblob.OpenBucket(nil)
		t.Cleanup(func() { b.Close() })
		return func(name string) *checkpoint.Store {
			s, err := checkpoint.Open(context.Background(), "mem://", checkpoint.Options{Bucket: b, Name: name, Logger: quietLogger(new(bytes.Buffer))})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	s3 := func(t *testing.T) func(string) *checkpoint.Store {
		u := testutil.StartS3(t, "locks").URL("locks", "job1")
		return func(name string) *checkpoint.Store {
			s, err := checkpoint.Open(context.Background(), u, checkpoint.Options{Name: name, Logger: quietLogger(new(bytes.Buffer))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	}
	for name, open := range map[string]opener{"Memblob": mem, "S3": s3} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			open := open(t)
			clock := &fakeClock{now: t0}
			opts := checkpoint.LockOptions{TTL: 2 * time.Minute, Now: clock.Now}
			a, b := open(""), open("")

			la, err := a.Lock(ctx, opts)
			if err != nil {
				t.Fatalf("Lock a: %v", err)
			}
			clock.now = t0.Add(time.Minute)
			_, err = b.Lock(ctx, opts)
			var le *checkpoint.LockedError
			if !errors.As(err, &le) || !errors.Is(err, checkpoint.ErrLocked) || le.Age != time.Minute || le.Owner.ID != la.Owner().ID {
				t.Fatalf("Lock b while a is fresh: %v, want ErrLocked by a, age 1m", err)
			}
			if !strings.Contains(err.Error(), "--force") {
				t.Fatalf("error %q does not mention --force", err)
			}
			// A shard has its own lock.
			lshard, err := open("shard-2-of-3").Lock(ctx, opts)
			if err != nil {
				t.Fatalf("shard Lock: %v", err)
			}
			// a's heartbeat keeps the lock alive past the first TTL.
			clock.now = t0.Add(90 * time.Second)
			if err := la.Refresh(ctx); err != nil {
				t.Fatalf("Refresh a: %v", err)
			}
			clock.now = t0.Add(3 * time.Minute) // 90s after the heartbeat
			if _, err := b.Lock(ctx, opts); !errors.Is(err, checkpoint.ErrLocked) {
				t.Fatalf("Lock b 90s after a's heartbeat: %v, want ErrLocked", err)
			}
			clock.now = t0.Add(4 * time.Minute) // 150s: stale
			lb, err := b.Lock(ctx, opts)
			if err != nil {
				t.Fatalf("Lock b over a stale lock: %v", err)
			}
			if prev, ok := lb.TookOver(); !ok || prev.ID != la.Owner().ID {
				t.Fatalf("TookOver=%+v,%v, want a", prev, ok)
			}
			if err := la.Refresh(ctx); !errors.Is(err, checkpoint.ErrLockLost) {
				t.Fatalf("Refresh a after take-over: %v, want ErrLockLost", err)
			}
			if err := la.Release(ctx); !errors.Is(err, checkpoint.ErrLockLost) {
				t.Fatalf("Release a after take-over: %v, want ErrLockLost", err)
			}
			// Force takes a fresh lock over.
			forced := opts
			forced.Force = true
			lc, err := a.Lock(ctx, forced)
			if err != nil {
				t.Fatalf("forced Lock: %v", err)
			}
			if prev, ok := lc.TookOver(); !ok || prev.ID != lb.Owner().ID {
				t.Fatalf("forced TookOver=%+v,%v, want b", prev, ok)
			}
			if err := lb.Refresh(ctx); !errors.Is(err, checkpoint.ErrLockLost) {
				t.Fatalf("Refresh b after forced take-over: %v", err)
			}
			if err := lc.Release(ctx); err != nil {
				t.Fatalf("Release c: %v", err)
			}
			ld, err := b.Lock(ctx, opts)
			if err != nil {
				t.Fatalf("Lock after Release: %v", err)
			}
			if _, ok := ld.TookOver(); ok {
				t.Fatal("lock after a clean Release reports a take-over")
			}
			ld.Release(ctx)
			lshard.Release(ctx)
		})
	}
}
