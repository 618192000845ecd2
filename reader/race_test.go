//go:build race

package reader_test

// raceEnabled shrinks the large-input tests: the race detector makes
// decoding several times slower.
const raceEnabled = true
