package main

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{"100MiB", 100 << 20, false}, {"100mib", 100 << 20, false}, {" 1.5 GiB ", 3 << 29, false},
		{"256M", 256 << 20, false}, {"2g", 2 << 30, false}, {"500MB", 500e6, false}, {"4096", 4096, false},
		{"64KiB", 64 << 10, false}, {"10B", 10, false}, {"0", 0, false}, {"off", 0, false},
		{"", 0, true}, {"MiB", 0, true}, {"-1MiB", 0, true}, {"12 parsecs", 0, true}, {"1e30", 0, true},
	} {
		got, err := parseSize(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
	if s := formatSize(100 << 20); s != "100MiB" {
		t.Errorf("formatSize = %q", s)
	}
}

func TestApplyMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	env := func(kv ...string) *environ {
		return &environ{lookup: func(k string) (string, bool) {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1], true
				}
			}
			return "", false
		}}
	}
	for _, tt := range []struct {
		name string
		flag sizeFlag
		env  *environ
		want int64
	}{
		{"Default", sizeFlag{}, env(), defaultMemoryLimit},
		{"Flag", sizeFlag{n: 256 << 20, set: true}, env("GOMEMLIMIT", "1GiB"), 256 << 20},
		{"FlagOff", sizeFlag{n: 0, set: true}, env(), math.MaxInt64},
		{"GOMEMLIMITLeftAlone", sizeFlag{}, env("GOMEMLIMIT", "1GiB"), before},
	} {
		t.Run(tt.name, func(t *testing.T) {
			restore := applyMemoryLimit(tt.flag, tt.env)
			if got := debug.SetMemoryLimit(-1); got != tt.want {
				t.Errorf("limit %d, want %d", got, tt.want)
			}
			restore()
			if got := debug.SetMemoryLimit(-1); got != before {
				t.Errorf("limit after restore %d, want %d", got, before)
			}
		})
	}
}
