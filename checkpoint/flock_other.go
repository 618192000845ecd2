//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package checkpoint

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("lock held by another process")

// flock is a no-op on platforms without flock(2) (Windows, Plan 9,
// Solaris): local checkpoints are not protected against concurrent runs
// there.
func flock(*os.File) error { return nil }

func funlock(*os.File) error { return nil }
