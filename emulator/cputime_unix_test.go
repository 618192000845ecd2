//go:build unix

package emulator_test

import (
	"syscall"
	"time"
)

// processCPU is the user+system CPU time used so far by this process (all
// threads, GC included).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
