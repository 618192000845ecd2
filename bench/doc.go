// Package bench holds the benchmarks of backfill: a driver (cmd/bench) that
// generates datasets, runs the real binary against the emulator and writes
// the tables of BENCHMARKS.md, and Go benchmarks of the whole pipeline.
//
// It is a separate module so that the product never depends on the
// Amplitude SDK used for the baseline, and so that `go test ./...` of the
// product never runs it.
package bench
