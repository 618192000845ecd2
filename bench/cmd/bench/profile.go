package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/backfillhq/backfill/job"
)

// profile runs one job in this process, with the configuration `backfill
// run` builds from its defaults, against an emulator child with throttling
// off, and writes a CPU profile and a heap profile (in-use memory at the
// end of reading, and allocations over the run) under dir/profile. With
// src set it profiles that JSON lines file or directory instead.
func profile(c common, format string, size, devices int, heapAt time.Duration, src string) error {
	t := &throughput{common: c, sizes: []int{size}, formats: []string{format}, devices: devices}
	path := src
	if src == "" {
		if err := t.generate(); err != nil {
			return err
		}
		path = t.path(size, format)
	} else {
		format = filepath.Base(src) // names the profile files
	}
	emu, err := startEmulator(c.bin, "--batch-eps", "0", "--http-eps", "0", "--daily-quota", "0")
	if err != nil {
		return err
	}
	defer emu.stop()
	ck, err := os.MkdirTemp(c.dir, "profile-run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(ck)
	out := filepath.Join(c.dir, "profile")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	cpuFile := filepath.Join(out, "cpu-"+format+".prof")
	f, err := os.Create(cpuFile)
	if err != nil {
		return err
	}
	defer f.Close()
	cfg := job.Config{
		Sources:                []string{path},
		Preset:                 "amplitude",
		SkipUserPropertiesSync: true,
		Endpoint:               emu.url,
		APIKey:                 benchAPIKey,
		Checkpoint:             ck,
		Logger:                 slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if format == "csv" {
		cfg.ColumnTypes = map[string]string{}
		for _, kv := range splitComma(csvTypes) {
			k, v, _ := cut(kv, ':')
			cfg.ColumnTypes[k] = v
		}
	}
	runtime.MemProfileRate = 64 * 1024
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	start := time.Now()
	ctx := context.Background()
	// A heap snapshot in the middle of the run shows what is held at the
	// peak (queued events), which the end-of-run profile cannot.
	midFile := filepath.Join(out, "heap-mid-"+format+".prof")
	mid := time.AfterFunc(heapAt, func() {
		if mf, err := os.Create(midFile); err == nil {
			runtime.GC()
			pprof.Lookup("heap").WriteTo(mf, 0)
			mf.Close()
		}
	})
	defer mid.Stop()
	rep, err := job.Run(ctx, ctx, cfg)
	wall := time.Since(start)
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	heapFile := filepath.Join(out, "heap-"+format+".prof")
	hf, err := os.Create(heapFile)
	if err != nil {
		return err
	}
	defer hf.Close()
	if err := pprof.Lookup("allocs").WriteTo(hf, 0); err != nil {
		return err
	}
	logf("profiled %s: %d accepted in %.1fs (%.0f ev/s); go tool pprof -top %s; go tool pprof -sample_index=alloc_space -top %s",
		filepath.Base(path), rep.EventsAccepted, wall.Seconds(), float64(rep.EventsAccepted)/wall.Seconds(), cpuFile, heapFile)
	fmt.Println(cpuFile)
	fmt.Println(heapFile)
	fmt.Println(midFile)
	return nil
}

func splitComma(s string) []string {
	var out []string
	for len(s) > 0 {
		k, rest, _ := cut(s, ',')
		out = append(out, k)
		s = rest
	}
	return out
}

func cut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
