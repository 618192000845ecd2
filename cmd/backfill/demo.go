package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/backfillhq/backfill/emulator"
	"github.com/backfillhq/backfill/fixtures"
)

const demoUsage = `Usage: backfill demo [flags]

Runs the real pipeline on the bundled fixtures (a few thousand events in
JSON lines, gzipped JSON lines, a JSON array and CSV, with a hot device, some
invalid records and two small recent partitions) against an in-process
Amplitude emulator: no API key, no network. Everything it writes goes to
--dir: the input files, the checkpoint, the report, the dead-letter file and
the emulator's record of accepted events.

The fixtures hold a few invalid records on purpose, so the demo exits 0 when
they are dead-lettered (pass --allow-rejected=false for run's exit code 3).

Run flags (--eps, --lanes, --route, --progress...) work here too, e.g.
  backfill demo --eps 20        # watch the hot device being paced

Flags:
`

func cmdDemo(hard, soft context.Context, args []string, env *environ, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var f jobFlags
	f.register(fs, true)
	dir := fs.String("dir", "backfill-demo", "working `directory` of the demo (recreated on every run)")
	emuEPS := fs.Int("emulator-batch-eps", 1000, "the emulator's per-id /batch threshold, in events/s over 30 s")
	fs.Usage = func() { fmt.Fprint(stderr, demoUsage); fs.PrintDefaults() }
	if _, err := parseFlags(fs, args, env, stderr); err != nil {
		return err
	}
	log, err := newLogger(&f, stderr, env)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(*dir); err != nil {
		return err
	}
	input := filepath.Join(*dir, "input")
	if err := extractDemo(input); err != nil {
		return fmt.Errorf("extract fixtures: %w", err)
	}
	record, err := os.Create(filepath.Join(*dir, "emulator-events.jsonl"))
	if err != nil {
		return err
	}
	defer record.Close()
	emu, err := emulator.New(emulator.Config{BatchEPS: *emuEPS, Record: record, DiscardEvents: true, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "demo: emulator of Amplitude listening on %s\n", base)
	fmt.Fprintf(stdout, "demo: sending the fixtures in %s\n", input)

	cfg, err := f.config([]string{input}, env, stderr)
	if err != nil {
		return err
	}
	cfg.Endpoint = base
	if !flagSet(fs, "allow-rejected") {
		// The fixtures hold invalid records on purpose: a demo that
		// dead-letters them has done its job (exit 0, not 3).
		f.allowRejected = true
	}
	if !flagSet(fs, "tail-events") {
		// The demo's whole input is small; keep the HTTP V2 tail to its
		// most recent partitions, as on a real dataset.
		cfg.TailEvents = 500
	}
	cfg.APIKey = "demo-api-key"
	env.apiKey = cfg.APIKey
	if cfg.Checkpoint == "" || cfg.Checkpoint == ".backfill" {
		cfg.Checkpoint = filepath.Join(*dir, "checkpoint")
	}
	if cfg.DeadLetter == "" {
		cfg.DeadLetter = filepath.Join(*dir, "dead-letter.jsonl")
	}
	if cfg.ReportFile == "" {
		cfg.ReportFile = filepath.Join(*dir, "report.json")
	}
	err = execute(hard, soft, cfg, &f, env, log, stdout, stderr)
	st := emu.Stats()
	fmt.Fprintf(stdout, "emulator:         %d events accepted (%d duplicates dropped) in %d /batch and %d /2/httpapi requests; record in %s\n",
		st.EventsAccepted, st.EventsDuplicate, st.RequestsBatch, st.RequestsHTTP, record.Name())
	return err
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// extractDemo copies the embedded demo fixtures to dir.
func extractDemo(dir string) error {
	sub, err := fs.Sub(fixtures.FS, "demo")
	if err != nil {
		return err
	}
	return fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
}
