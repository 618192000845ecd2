//go:build !race

package memtest_test

const raceEnabled = false
