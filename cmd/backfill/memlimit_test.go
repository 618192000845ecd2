package main

import (
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
	"time"
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
	for n, want := range map[int64]string{100 << 20: "100MiB", 2 << 30: "2GiB", 160000 << 10: "156.2MiB", 1000: "1000"} {
		if s := formatSize(n); s != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, s, want)
		}
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
			restore := applyMemoryLimit(tt.flag, tt.env, slog.New(slog.DiscardHandler))
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

// The governor raises the default limit, a quarter at a time up to its
// maximum, only over intervals where the GC took more than gcShareMax of
// the CPU used.
func TestMemGovernor(t *testing.T) {
	var gc, used float64
	var set []int64
	g := &memGovernor{
		limit: 100, max: 200,
		sample: func() (float64, float64) { return gc, used },
		set:    func(n int64) int64 { set = append(set, n); return 0 },
		log:    slog.New(slog.DiscardHandler),
	}
	steps := []struct {
		dGC, dUsed float64
		raised     bool
		limit      int64
	}{
		{0.05, 1, false, 100}, // 5%: fine
		{0.14, 1, false, 100}, // 14%: under the threshold
		{0.5, 1, false, 100},  // 50%, once: a transient
		{0.05, 1, false, 100}, // and gone
		{0.5, 1, false, 100},  // 50%...
		{0.3, 1, true, 125},   // ...twice in a row: raise
		{0, 0, false, 125},    // idle
		{0.3, 1, false, 125},  //
		{0.9, 1, true, 156},   // again
		{0.9, 1, false, 156},  // the count starts over after a raise
		{0.9, 1, true, 195},   //
		{0.9, 1, false, 195},  //
		{0.9, 1, true, 200},   // capped at max
		{0.9, 1, false, 200},  //
		{0.9, 1, false, 200},  // and stays there
	}
	for i, s := range steps {
		gc += s.dGC
		used += s.dUsed
		if raised := g.step(); raised != s.raised || g.limit != s.limit {
			t.Fatalf("step %d: raised %v limit %d, want %v %d", i, raised, g.limit, s.raised, s.limit)
		}
	}
	if want := []int64{125, 156, 195, 200}; fmt.Sprint(set) != fmt.Sprint(want) {
		t.Fatalf("limits set %v, want %v", set, want)
	}
	// start and stop: no goroutine is left running a step after stop.
	stop := g.start(time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	stop()
}
