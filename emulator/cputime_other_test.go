//go:build !unix

package emulator_test

import "time"

// processCPU is unknown here; benchmarks then report 0 CPU per event.
func processCPU() time.Duration { return 0 }
