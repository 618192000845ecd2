//go:build race

package memtest_test

// raceEnabled shrinks the inputs: the race detector makes the pipeline
// several times slower and its allocations bigger.
const raceEnabled = true
