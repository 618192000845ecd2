package memtest_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backfillhq/backfill/fixtures/fixturegen"
	"github.com/backfillhq/backfill/job"
	"github.com/backfillhq/backfill/pipeline"
)

// Bounds, chosen from measurements (see the report of each run with -v).
// The pipeline alone peaks at 25-50 MB of HeapInuse on the uniform inputs
// and at about 105 MB on the skewed one, whose hot lane holds
// chunker.DefaultMaxQueuedBytes (32 MiB) of events before it spills.
// flatMargin and flatSlack allow for GC timing: the heap in use moves
// between the live heap and twice that with each cycle.
const (
	flatBound  = 100 << 20
	skewBound  = 160 << 20
	flatMargin = 0.30
	flatSlack  = 12 << 20
)

// scale shrinks the uniform inputs under the race detector.
func scale(n int) int {
	if raceEnabled {
		return n / 5
	}
	return n
}

// memPeak is what the sampler saw during one run.
type memPeak struct {
	base      uint64 // HeapInuse after a GC, before the run
	heapInuse uint64 // peak HeapInuse
	live      uint64 // peak live heap as of the last GC
	sys       uint64 // peak Sys
	spills    int    // most spill files open at once; -1 without /proc
	samples   int
}

func (p memPeak) String() string {
	return fmt.Sprintf("peak HeapInuse %.1f MB (%.1f MB before), peak live heap %.1f MB, peak Sys %.1f MB; %d samples, at most %d spill files open",
		mb(p.heapInuse), mb(p.base), mb(p.live), mb(p.sys), p.samples, p.spills)
}

func mb(n uint64) float64 { return float64(n) / (1 << 20) }

// sample runs fn while a goroutine samples the memory statistics every
// 20 ms and counts the spill files open in spillDir.
func sample(spillDir string, fn func()) memPeak {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p := memPeak{base: ms.HeapInuse}
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	take := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		metrics.Read(live)
		p.samples++
		p.heapInuse = max(p.heapInuse, ms.HeapInuse)
		p.sys = max(p.sys, ms.Sys)
		if live[0].Value.Kind() == metrics.KindUint64 {
			p.live = max(p.live, live[0].Value.Uint64())
		}
		if n := countSpills(spillDir); n < 0 || p.spills < 0 {
			p.spills = -1
		} else {
			p.spills = max(p.spills, n)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				take()
			case <-stop:
				return
			}
		}
	})
	fn()
	close(stop)
	wg.Wait()
	take()
	return p
}

// countSpills counts this process's open files in dir named like the
// chunker's spill files (unlinked at creation, so only /proc sees them); -1
// when /proc is not available.
func countSpills(dir string) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && strings.HasPrefix(target, dir+string(os.PathSeparator)+"backfill-spill-") {
			n++
		}
	}
	return n
}

// checkGoroutines fails when the goroutines running before a job are not
// back to their number soon after it: a leaked lane, request or connection.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines after the run, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(10 * time.Millisecond) // waiting for goroutines to exit, not for the code under test
	}
}

// baseConfig is a job over path sending to endpoint, with state in dir.
func baseConfig(path, endpoint, dir string) job.Config {
	return job.Config{
		Sources:    []string{path},
		Endpoint:   endpoint,
		APIKey:     "memtest-key-0123456789",
		Route:      job.RouteBatch,
		EPS:        1000,
		Linger:     20 * time.Millisecond,
		Checkpoint: filepath.Join(dir, "state"),
		DeadLetter: filepath.Join(dir, "dead-letter.jsonl"),
		ReportFile: filepath.Join(dir, "report.json"),
		Logger:     discardLogger,
	}
}

// checkFlat asserts that large, the peak of the 4× larger input, stays
// within flatMargin (plus flatSlack) of small, and both under bound.
func checkFlat(t *testing.T, small, large memPeak, bound uint64) {
	t.Helper()
	for _, p := range []memPeak{small, large} {
		if p.heapInuse > bound {
			t.Errorf("peak HeapInuse %.1f MB above the bound of %.1f MB", mb(p.heapInuse), mb(bound))
		}
	}
	if limit := uint64(float64(small.heapInuse)*(1+flatMargin)) + flatSlack; large.heapInuse > limit {
		t.Errorf("memory grows with the input: peak HeapInuse %.1f MB for 4× the input, %.1f MB for 1× (limit %.1f MB)",
			mb(large.heapInuse), mb(small.heapInuse), mb(limit))
	}
}

// checkDelivered asserts that the emulator accepted exactly accepted
// events, once each, and that the report adds up (pending: events read and
// left unsettled by a graceful stop).
func checkDelivered(t *testing.T, rep *job.Report, accepted, pending int64) {
	t.Helper()
	st := emulatorStats(t)
	if st.EventsAccepted != accepted || st.EventsDuplicate != 0 {
		t.Errorf("emulator accepted %d events (%d duplicates), want %d", st.EventsAccepted, st.EventsDuplicate, accepted)
	}
	if rep.EventsAccepted != accepted || rep.EventsRejected != 0 || rep.EventsPending != pending {
		t.Errorf("report accepted %d rejected %d pending %d, want %d, 0, %d", rep.EventsAccepted, rep.EventsRejected, rep.EventsPending, accepted, pending)
	}
	if rep.EventsRead != rep.EventsAccepted+rep.EventsRejected+rep.EventsPending {
		t.Errorf("report: events_read %d != accepted %d + rejected %d + pending %d", rep.EventsRead, rep.EventsAccepted, rep.EventsRejected, rep.EventsPending)
	}
}

// TestFlatMemory sends each format at two sizes, the second four times the
// first, and checks that the peak heap does not grow with the input.
// Peaks measured (2 cores, shared machine): 25-55 MB of HeapInuse without
// and 17-40 MB with the race detector, whatever the size.
func TestFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("large generated inputs; skipped with -short")
	}
	tests := []struct {
		name  string
		file  string
		n     int // events of the smaller input
		types map[string]string
	}{
		{"JSONLines", "events.jsonl", scale(100_000), nil},               // stored: 18 MB, then 73 MB
		{"CSV", "events.csv", scale(100_000), fixturegen.CSVColumnTypes}, // stored: 9 MB, then 37 MB
		{"Parquet", "events.parquet", scale(100_000), nil},               // stored: 3 MB, then 12 MB
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The smaller input runs before and after the larger one, and
			// the larger is compared with the higher of the two: the load of
			// the machine moves the peak (a slower sender leaves more
			// events in the lanes), and it may change during the test.
			var peaks [3]memPeak
			for i, n := range []int{tt.n, 4 * tt.n, tt.n} {
				dir := t.TempDir()
				path := filepath.Join(dir, tt.file)
				// Parquet: row groups of 16,384 rows, so the larger file
				// has more of them rather than bigger ones.
				if err := fixturegen.WriteFile(path, fixturegen.Options{N: n, Seed: int64(7 + i), RowGroupRows: 16384}); err != nil {
					t.Fatal(err)
				}
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				cfg := baseConfig(path, freshEmulator(t), dir)
				cfg.ColumnTypes = tt.types
				goroutines := runtime.NumGoroutine()
				var rep *job.Report
				start := time.Now()
				peaks[i] = sample(dir, func() {
					rep, err = job.Run(context.Background(), context.Background(), cfg)
				})
				if err != nil {
					t.Fatalf("%d events: %v", n, err)
				}
				t.Logf("%d events (%.1f MB stored) sent in %v: %s", n, mb(uint64(fi.Size())), time.Since(start).Round(time.Millisecond), peaks[i])
				checkDelivered(t, rep, int64(n), 0)
				checkGoroutines(t, goroutines)
				os.Remove(path)
			}
			small := peaks[0]
			if peaks[2].heapInuse > small.heapInuse {
				small = peaks[2]
			}
			checkFlat(t, small, peaks[1], flatBound)
		})
	}
}

// The skewed input: one device (and its user) holds half of the events and
// may send only skewEPS*30 of them per 30 s window.
const (
	skewEPS   = 100
	hotDevice = "hot-device-0001"
	hotUser   = "hot-user-0001"
	// hotEventPad pads the hot device's events to about 3.2 KB: its lane
	// then reaches chunker.DefaultMaxQueuedBytes (32 MiB) with some 10,500
	// of them and spills the rest to disk, so a backlog of 15,000 events
	// spills (with small events the lane would spill only past
	// chunker.DefaultMaxQueued, 20,000 events, and the inputs would have
	// to be larger).
	hotEventPad = 3000
	// skewStall is how long the skewed run may read and send nothing
	// before it counts as stuck: until it has sent what the pace allows,
	// it waits for the clock for less than one 30 s window at a time.
	skewStall = 2 * time.Minute
)

// writeSkewed writes 2*hot JSON lines alternating the hot device (padded
// events) and 500 cold devices.
func writeSkewed(path string, hot int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	// Strings over 1,024 characters would be truncated by validation: pad
	// with several shorter ones.
	hotPad := strings.TrimSuffix(strings.Repeat(strings.Repeat("h", 1000)+`","`, hotEventPad/1000), `","`)
	coldPad := strings.Repeat("c", 100)
	for i := range 2 * hot {
		dev, user, pad := hotDevice, hotUser, hotPad
		if i%2 == 1 {
			dev, user, pad = fmt.Sprintf("cold-device-%04d", i/2%500), fmt.Sprintf("cold-user-%04d", i/2%500), coldPad
		}
		fmt.Fprintf(w, `{"event_type":"skew %d","device_id":%q,"user_id":%q,"time":%d,"insert_id":"skew-%08d","event_properties":{"i":%d,"pad":["%s"]}}`+"\n",
			i%5, dev, user, 1704067200000+int64(i)*100, i, i, pad)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// TestSkewedSpill sends an input where one device holds half of the events
// at a pace that lets it send only skewEPS*30 of them in the first window:
// the rest, its backlog, must go to spill files and not stay on the heap,
// so the peak heap is the same for a backlog four times larger. Every cold
// event and the hot device's first window are delivered exactly once; the
// run is then stopped gracefully (the hot device would need minutes, its
// next window opens only after 30 s) and its report adds up.
func TestSkewedSpill(t *testing.T) {
	if testing.Short() {
		t.Skip("large generated inputs; skipped with -short")
	}
	// The hot device's backlog must exceed what its lane keeps in memory
	// (see hotEventPad), even for the smaller input, so the sizes do not
	// shrink under the race detector.
	const small = 18_000
	var peaks [2]memPeak
	for i, hot := range []int{small, 4 * small} {
		dir := t.TempDir()
		// Spill files go to os.TempDir(): point it here to count them.
		spillDir := filepath.Join(dir, "tmp")
		if err := os.Mkdir(spillDir, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Setenv("TMPDIR", spillDir)
		path := filepath.Join(dir, "skewed.jsonl")
		if err := writeSkewed(path, hot); err != nil {
			t.Fatal(err)
		}
		cfg := baseConfig(path, freshEmulator(t), dir)
		cfg.EPS = skewEPS
		cfg.Stats = new(pipeline.Stats)
		total, sendable := int64(2*hot), int64(hot+skewEPS*30)

		goroutines := runtime.NumGoroutine()
		soft, stop := context.WithCancel(context.Background())
		// No deadline on the whole run (its length is CPU time, which a
		// loaded machine stretches): the run fails when it stops making
		// progress, reading or sending nothing for skewStall.
		hard, cancel := context.WithCancel(context.Background())
		var (
			rep     *job.Report
			err     error
			longest time.Duration // without progress
		)
		start := time.Now()
		peaks[i] = sample(spillDir, func() {
			done := make(chan struct{})
			go func() {
				defer close(done)
				rep, err = job.Run(hard, soft, cfg)
			}()
			// Stop once everything the pace allows was sent.
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			var last [2]int64
			moved := time.Now()
			defer func() { t.Logf("longest time without progress: %v", longest.Round(time.Millisecond)) }()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					now := [2]int64{cfg.Stats.Read.Load(), cfg.Stats.Accepted.Load()}
					if now[0] == total && now[1] >= sendable {
						stop()
						<-done
						return
					}
					if still := time.Since(moved); now != last {
						last, moved = now, time.Now()
					} else if longest = max(longest, still); still > skewStall {
						t.Errorf("%d hot events: no progress for %v (read %d of %d, accepted %d of %d)",
							hot, skewStall, now[0], total, now[1], sendable)
						cancel()
						<-done
						return
					}
				}
			}
		})
		stop()
		cancel()
		if rep == nil {
			t.Fatalf("%d hot events: no report: %v", hot, err)
		}
		if !errors.Is(err, pipeline.ErrInterrupted) || rep.Status != job.StatusInterrupted {
			t.Errorf("run ended with %v (status %s), want a graceful stop", err, rep.Status)
		}
		accepted := emulatorStats(t).EventsAccepted
		t.Logf("%d events (%d of one device), %d sent in %v: %s", total, hot, accepted, time.Since(start).Round(time.Millisecond), peaks[i])
		if accepted < sendable {
			t.Errorf("accepted %d events, want at least %d", accepted, sendable)
		}
		if rep.EventsRead != total {
			t.Errorf("report read %d events, want %d", rep.EventsRead, total)
		}
		checkDelivered(t, rep, accepted, total-accepted)
		if peaks[i].spills == 0 {
			t.Errorf("the hot device's backlog of %d events never spilled to disk", int64(hot)-skewEPS*30)
		}
		if n := countSpills(spillDir); n > 0 {
			t.Errorf("%d spill files still open after the run", n)
		}
		if ents, err := os.ReadDir(spillDir); err != nil || len(ents) > 0 {
			t.Errorf("spill directory after the run: %v %v", ents, err)
		}
		checkGoroutines(t, goroutines)
	}
	checkFlat(t, peaks[0], peaks[1], skewBound)
}
