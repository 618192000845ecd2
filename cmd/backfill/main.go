// Command backfill moves historical analytics events from files and object
// storage (local, S3, GCS, Azure) into Amplitude, resumably and as fast as
// Amplitude's limits allow.
//
// Run `backfill help` for the subcommands and `backfill run -h` for flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/job"

	"github.com/backfillhq/backfill/internal/escape"
	"github.com/backfillhq/backfill/internal/redact"
)

// Version and Commit are set at build time with -ldflags "-X main.Version=...".
var (
	Version = "dev"
	Commit  = "unknown"
)

// Exit codes, documented in the README.
const (
	ExitOK          = 0   // every record accepted
	ExitFailed      = 1   // the run failed, or some objects could not be read
	ExitUsage       = 2   // bad flags or configuration
	ExitRejected    = 3   // completed, some records dead-lettered
	ExitIncomplete  = 4   // stopped with work left: ids parked for the daily quota
	ExitInterrupted = 130 // Ctrl-C / SIGTERM: checkpoint saved, rerun to resume
)

const usage = `backfill moves historical analytics events into Amplitude.

Usage:
  backfill <command> [flags] [arguments]

Commands:
  run        send events from files or buckets to Amplitude (resumable)
  demo       run the whole pipeline on bundled fixtures against an in-process emulator
  plan       list objects, partitions and routes, and estimate the finishing time (no sending)
  validate   read, map and validate events and summarise problems (no sending)
  status     show a job's progress from its checkpoint
  report     reprint the summary of a finished or running job
  emulator   serve a local fake of Amplitude's /batch and /2/httpapi
  presets    list the mapping presets; presets show NAME prints one field by field
  version    print the version
  completion print a bash or zsh completion script

Run 'backfill <command> -h' for the flags of a command.

Quick start:
  make demo                                      # no API key, no network
  AMPLITUDE_API_KEY=... backfill run ./events/   # a directory of JSON lines files
  backfill run --preset mixpanel s3://bucket/mixpanel-export/
`

func main() {
	hard, cancelHard := context.WithCancel(context.Background())
	soft, cancelSoft := context.WithCancel(hard)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go signalPolicy(sigs, time.Now, cancelSoft, cancelHard, os.Stderr)
	code := Main(hard, soft, os.Args[1:], os.Stdout, os.Stderr)
	cancelSoft()
	cancelHard()
	os.Exit(code)
}

// Main runs the command line args and returns the exit code. soft ends a
// run gracefully (first signal); hard aborts it (second signal).
func Main(hard, soft context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	var err error
	env := &environ{lookup: os.LookupEnv}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		err = cmdRun(hard, soft, rest, env, stdout, stderr)
	case "demo":
		err = cmdDemo(hard, soft, rest, env, stdout, stderr)
	case "plan":
		err = cmdPlan(hard, rest, env, stdout, stderr)
	case "validate":
		err = cmdValidate(hard, rest, env, stdout, stderr)
	case "status":
		err = cmdStatus(hard, rest, env, stdout, stderr, false)
	case "report":
		err = cmdStatus(hard, rest, env, stdout, stderr, true)
	case "emulator":
		err = runEmulator(soft, rest, stdout, stderr)
	case "presets":
		err = cmdPresets(rest, stdout, stderr)
	case "completion":
		err = cmdCompletion(rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "backfill %s (commit %s)\n", Version, Commit)
		return ExitOK
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	default:
		fmt.Fprintf(stderr, "backfill: unknown command %q\n\n%s", cmd, usage)
		return ExitUsage
	}
	return exitCode(err, stderr, env.apiKey)
}

// exitCode prints err once (redacting the API key) and maps it to an exit
// code.
func exitCode(err error, stderr io.Writer, key string) int {
	if err == nil {
		return ExitOK
	}
	var (
		code int
		sh   shown
	)
	switch {
	case errors.Is(err, errHelp):
		return ExitOK
	case errors.Is(err, errUsageShown):
		return ExitUsage
	case errors.Is(err, job.ErrUsage), errors.Is(err, errUsage), errors.Is(err, checkpoint.ErrMismatch):
		code = ExitUsage
	case errors.Is(err, job.ErrRejected):
		return exitFor(backfill.Rejected) // the summary already said it
	case errors.As(err, &sh):
		return exitFor(sh.o) // the summary already said it
	default:
		code = ExitFailed
	}
	fmt.Fprintf(stderr, "backfill: %s\n", escape.Line(redact.Text(err.Error(), key)))
	return code
}

var (
	errHelp       = errors.New("help shown")
	errUsageShown = errors.New("usage error shown")
)

// shown is a job's outcome whose message the command already printed.
type shown struct{ o backfill.Outcome }

func (s shown) Error() string { return string(s.o) }

// exitFor maps a job's outcome to its documented exit code.
func exitFor(o backfill.Outcome) int {
	switch o {
	case backfill.Complete:
		return ExitOK
	case backfill.Rejected:
		return ExitRejected
	case backfill.Interrupted:
		return ExitInterrupted
	case backfill.Incomplete:
		return ExitIncomplete
	}
	return ExitFailed
}
