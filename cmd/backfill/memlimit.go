package main

import (
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// defaultMemoryLimit is the Go runtime's soft memory limit for a run unless
// --memory-limit or GOMEMLIMIT says otherwise. With it the garbage collector
// runs a little more often instead of letting the heap grow to twice what
// is live, which holds peak RSS near 150 MB (the limit plus the program's
// code) at a few percent more CPU where the working set is well below it;
// where it is not, memGovernor raises it. See BENCHMARKS.md.
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
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}

// applyMemoryLimit sets the runtime's soft memory limit for a run and
// returns a function restoring the previous one. An explicit --memory-limit
// is applied as it is; otherwise GOMEMLIMIT, which the runtime has already
// applied, is left alone; otherwise the default applies under a governor
// that raises it when the working set needs more (see memGovernor). 0 means
// no limit.
func applyMemoryLimit(flagLimit sizeFlag, env *environ, log *slog.Logger) (restore func()) {
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
		limit = math.MaxInt64
	}
	old := debug.SetMemoryLimit(limit)
	stop := func() {}
	if !flagLimit.set {
		g := &memGovernor{limit: limit, max: maxMemoryLimit, sample: gcCPU, set: debug.SetMemoryLimit, log: log}
		stop = g.start(time.Second)
	}
	return func() {
		stop()
		debug.SetMemoryLimit(old)
	}
}

// maxMemoryLimit is as far as the governor raises the default limit.
const maxMemoryLimit = 4 * defaultMemoryLimit

// memGovernor raises the soft memory limit, a quarter at a time up to max,
// whenever garbage collection took more than gcShareMax of the CPU the
// program used over gcShareSustain intervals in a row. A working set close to the limit
// (Parquet's column pages, large events, many lanes) would otherwise make
// the GC run back to back for as long as the run lasts: the default limit
// holds memory down where that is cheap and gives way where it is not. An
// explicit --memory-limit or GOMEMLIMIT is never raised.
type memGovernor struct {
	limit, max int64
	sample     func() (gc, used float64) // cumulative CPU seconds
	set        func(int64) int64
	log        *slog.Logger

	lastGC, lastUsed float64
	over             int // consecutive intervals over gcShareMax
}

// gcShareMax is the share of the CPU used (by Go code and the GC) that the
// GC may take before the limit gives way: JSON lines at the default limit
// measured 8-9% (about half of that as a share of both CPUs), Parquet
// 27-34%.
const gcShareMax = 0.15

// gcShareSustain is how many intervals in a row the GC must exceed
// gcShareMax: a single busy second (a Parquet row group starting) is no
// reason to hold more memory for the rest of the run.
const gcShareSustain = 2

// step looks at the CPU used since the last step and raises the limit if
// the GC took too much of it for gcShareSustain steps in a row. It reports
// whether it did.
func (g *memGovernor) step() bool {
	gc, used := g.sample()
	dGC, dUsed := gc-g.lastGC, used-g.lastUsed
	g.lastGC, g.lastUsed = gc, used
	if dUsed <= 0 || dGC/dUsed <= gcShareMax {
		g.over = 0
		return false
	}
	if g.over++; g.over < gcShareSustain || g.limit >= g.max {
		return false
	}
	g.over = 0
	old := g.limit
	g.limit = min(g.max, g.limit+g.limit/4)
	g.set(g.limit)
	g.log.Debug("raised the soft memory limit: garbage collection was taking too much CPU",
		"gc_cpu_share", fmt.Sprintf("%.0f%%", 100*dGC/dUsed), "from", formatSize(old), "to", formatSize(g.limit))
	return true
}

// start runs step every interval until the returned stop is called.
func (g *memGovernor) start(every time.Duration) (stop func()) {
	g.lastGC, g.lastUsed = g.sample()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				g.step()
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// gcCPU reads the runtime's estimates of CPU time spent on garbage
// collection and in total by Go code (user code plus GC).
func gcCPU() (gc, used float64) {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/user:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 || s[1].Value.Kind() != metrics.KindFloat64 {
		return 0, 0
	}
	gc = s[0].Value.Float64()
	return gc, gc + s[1].Value.Float64()
}
