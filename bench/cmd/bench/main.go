// Command bench measures backfill end to end and writes the tables of
// BENCHMARKS.md. It is run by `make bench` and `make bench-skew`.
//
//	bench throughput [-sizes 1000000,5000000] [-formats jsonl,jsonl.gz,csv,parquet]
//	bench skew [-devices 5000 -top 4200 -zipf 1.2 -eps 50 -sdk-cap 3m]
//	bench shapes [-quick] [-sdk-all=false]   # bucket layouts: many objects, gzip mix, derived ids, event sizes
//	bench gen [-sizes ...]                 # only generate the cached datasets
//	bench profile [-format jsonl -size N]  # one in-process run with CPU and heap profiles
//
// Every measured program is a separate process: the real binary (bin/backfill)
// against a `backfill emulator` child with the limits of the run, the
// read-and-parse floor and the SDK baseline (this program re-executed with
// the internal subcommands floor and sdk). CPU time and peak RSS come from
// each child's getrusage (os.ProcessState).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// benchAPIKey is a placeholder key: the emulator accepts any non-empty one.
const benchAPIKey = "bench-not-a-real-key"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// common flags.
type common struct {
	dir, bin, md string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.dir, "dir", "../.bench", "dataset cache and result `directory`")
	fs.StringVar(&c.bin, "bin", "../bin/backfill", "the backfill `binary` to measure (make build)")
	fs.StringVar(&c.md, "md", "../BENCHMARKS.md", "update the tables of this `file` (empty: print only)")
}

func run(args []string) error {
	if len(args) == 0 {
		args = []string{"throughput"}
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var c common
	switch cmd {
	case "throughput", "gen":
		c.register(fs)
		sizes := fs.String("sizes", "1000000,5000000", "comma-separated dataset `sizes` in events")
		fmts := fs.String("formats", strings.Join(formats, ","), "comma-separated `formats`")
		sdk := fs.Bool("sdk", true, "run the SDK baseline on the JSON lines files")
		sdkSizes := fs.String("sdk-sizes", "", "comma-separated sizes to run the SDK baseline on (default: the smallest of -sizes)")
		devices := fs.Int("devices", 50000, "distinct devices in the throughput datasets")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		ns, err := parseSizes(*sizes)
		if err != nil {
			return err
		}
		t := &throughput{common: c, sizes: ns, formats: strings.Split(*fmts, ","), devices: *devices}
		if *sdk {
			t.sdkSizes = []int{slices.Min(ns)}
			if *sdkSizes != "" {
				if t.sdkSizes, err = parseSizes(*sdkSizes); err != nil {
					return err
				}
			}
		}
		if cmd == "gen" {
			return t.generate()
		}
		return t.run()
	case "skew":
		c.register(fs)
		s := &skew{common: c}
		fs.IntVar(&s.devices, "devices", 5000, "distinct devices")
		fs.IntVar(&s.top, "top", 4200, "events of the hottest device (device k gets top/k^zipf)")
		fs.Float64Var(&s.zipf, "zipf", 1.2, "Zipf exponent")
		fs.IntVar(&s.eps, "eps", 50, "per-id limit of the emulator and pace of backfill, events/s over 30 s")
		fs.DurationVar(&s.sdkCap, "sdk-cap", 3*time.Minute, "stop waiting for the SDK baseline after this long")
		fs.BoolVar(&s.sdk, "sdk", true, "run the SDK baseline")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		s.common = c // parsed now: -dir, -bin and -md
		return s.run()
	case "shapes":
		c.register(fs)
		s := &shapes{common: c}
		fs.BoolVar(&s.quick, "quick", false, "smaller shapes (200,000 events; 2,000 tiny objects) and the SDK baseline on the one-file and 8-object shapes only")
		fs.BoolVar(&s.sdk, "sdk", true, "run the SDK baseline")
		fs.IntVar(&s.devices, "devices", 50000, "distinct devices")
		fs.StringVar(&s.only, "only", "", "run only the shapes whose name contains this `text`")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		s.common = c // parsed now: -dir, -bin and -md
		s.sdkAll = !s.quick
		return s.run()
	case "genshape": // internal: bench genshape DIR OBJECTS EVENTS GZIP KIND DEVICES
		if len(rest) != 6 {
			return errors.New("usage: bench genshape DIR OBJECTS EVENTS GZIP KIND DEVICES")
		}
		var objects, events, devices int
		var gz, kind string
		if _, err := fmt.Sscan(strings.Join(rest[1:], " "), &objects, &events, &gz, &kind, &devices); err != nil {
			return err
		}
		return writeShape(rest[0], objects, events, strings.Trim(gz, "-"), strings.Trim(kind, "-"), devices)
	case "profile":
		c.register(fs)
		format := fs.String("format", "jsonl", "dataset `format`")
		size := fs.Int("size", 1000000, "dataset size in events")
		devices := fs.Int("devices", 50000, "distinct devices")
		heapAt := fs.Duration("heap-at", 8*time.Second, "when to take the mid-run heap snapshot")
		src := fs.String("path", "", "profile this JSON lines file or directory (a shape of .bench/data/shapes) instead of a generated dataset")
		if err := fs.Parse(rest); err != nil {
			return err
		}
		return profile(c, *format, *size, *devices, *heapAt, *src)
	case "genfile": // internal: bench genfile PATH N DEVICES SEED ZIPF TOP
		if len(rest) != 6 {
			return errors.New("usage: bench genfile PATH N DEVICES SEED ZIPF TOP")
		}
		var d dataset
		if _, err := fmt.Sscan(strings.Join(rest[1:], " "), &d.N, &d.Devices, &d.Seed, &d.ZipfS, &d.Top); err != nil {
			return err
		}
		return writeDataset(rest[0], d)
	case "floor": // internal: bench floor FILE
		if len(rest) != 1 {
			return errors.New("usage: bench floor FILE")
		}
		n, err := floorRead(rest[0])
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(map[string]int64{"records": n})
	case "sdk": // internal: bench sdk FILE URL CAP PATIENT
		if len(rest) != 4 {
			return errors.New("usage: bench sdk FILE URL CAP PATIENT")
		}
		limit, err := time.ParseDuration(rest[2])
		if err != nil {
			return err
		}
		res, err := sdkBackfill(rest[0], rest[1], limit, rest[3] == "true")
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	return fmt.Errorf("unknown command %q (throughput, shapes, skew, gen, profile)", cmd)
}

func parseSizes(s string) ([]int, error) {
	var ns []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad size %q", f)
		}
		ns = append(ns, n)
	}
	if len(ns) == 0 {
		return nil, errors.New("no sizes")
	}
	return ns, nil
}

// ensure generates path from d unless it is cached. It runs the generator
// in a child process: the driver must stay small, because Linux reports a
// child's ru_maxrss as at least the parent's peak RSS at the time of the
// fork (Go's os/exec shares the parent's address space until exec).
func ensure(path string, d dataset) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	exe, err := self()
	if err != nil {
		return err
	}
	start := time.Now()
	fmt.Fprintf(os.Stderr, "generating %s ...", filepath.Base(path))
	if _, _, err := runChild(0, nil, exe, "genfile", path, strconv.Itoa(d.N), strconv.Itoa(d.Devices),
		strconv.FormatInt(d.Seed, 10), strconv.FormatFloat(d.ZipfS, 'f', -1, 64), strconv.Itoa(d.Top)); err != nil {
		fmt.Fprintln(os.Stderr)
		return err
	}
	fi, _ := os.Stat(path)
	fmt.Fprintf(os.Stderr, " %.0f MB in %.0fs\n", float64(fi.Size())/1e6, time.Since(start).Seconds())
	return nil
}

// self is this program, re-executed for the floor and SDK children.
func self() (string, error) { return os.Executable() }
