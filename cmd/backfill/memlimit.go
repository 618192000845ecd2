package main

import (
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
)

// defaultMemoryLimit is the Go runtime's soft memory limit for a run unless
// --memory-limit or GOMEMLIMIT says otherwise. With it the garbage collector
// runs a little more often instead of letting the heap grow to twice what
// is live, which holds peak RSS near 150 MB (the limit plus the program's
// code) at a few percent more CPU; see BENCHMARKS.md.
const defaultMemoryLimit = 100 << 20

// sizeFlag is a byte size such as 100MiB, 1.5GB or 4096; 0 or "off" is 0.
type sizeFlag struct {
	n   int64
	set bool
}

func (s *sizeFlag) String() string {
	if s == nil || !s.set {
		return ""
	}
	return formatSize(s.n)
}

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	s.n, s.set = n, true
	return nil
}

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// parseSize reads a byte size: a number with an optional unit (B, KB, MB,
// GB, TB in powers of 1000; KiB, MiB, GiB, TiB or K, M, G, T in powers of
// 1024), or "off".
func parseSize(v string) (int64, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	if s == "off" || s == "none" {
		return 0, nil
	}
	mult := 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f*mult > 1<<62 {
		return 0, fmt.Errorf("invalid size %q (want e.g. 100MiB, 2GiB, 0 or off)", v)
	}
	return int64(f * mult), nil
}

func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// applyMemoryLimit sets the runtime's soft memory limit for a run and
// returns a function restoring the previous one. An explicit --memory-limit
// wins; otherwise GOMEMLIMIT, which the runtime has already applied, is
// left alone; otherwise the default applies. 0 means no limit.
func applyMemoryLimit(flagLimit sizeFlag, env *environ) (restore func()) {
	var limit int64
	switch {
	case flagLimit.set:
		limit = flagLimit.n
	case env.get("GOMEMLIMIT") != "":
		return func() {}
	default:
		limit = defaultMemoryLimit
	}
	if limit == 0 {
		limit = -1 >> 1 // math.MaxInt64: no limit
	}
	old := debug.SetMemoryLimit(limit)
	return func() { debug.SetMemoryLimit(old) }
}
