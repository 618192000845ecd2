package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/internal/escape"
	"github.com/backfillhq/backfill/job"
)

const planUsage = `Usage: backfill plan [flags] SOURCE...

A dry run with bounded memory: lists the objects in processing order with
their route (/batch, or /2/httpapi for small trailing partitions), reads and
validates every record, counts events per device and user, and prints the
lower bound on the finishing time given --eps. Sends nothing.

Example:
  backfill plan --eps 300 s3://bucket/events/

Flags:
`

const validateUsage = `Usage: backfill validate [flags] SOURCE...

Reads, maps and validates every record (as run would) and prints a summary:
counts per rejection reason, sample bad records with their locations, the
time range, distinct devices and users, and the first mapped events. Sends
nothing.

Example:
  backfill validate --preset mixpanel ./export/*.json

Flags:
`

func cmdPlan(ctx context.Context, args []string, env *environ, stdout, stderr io.Writer) error {
	return inspect(ctx, "plan", planUsage, args, env, stdout, stderr)
}

func cmdValidate(ctx context.Context, args []string, env *environ, stdout, stderr io.Writer) error {
	return inspect(ctx, "validate", validateUsage, args, env, stdout, stderr)
}

func inspect(ctx context.Context, name, usage string, args []string, env *environ, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var f jobFlags
	f.register(fs, false)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	sources, err := parseFlags(fs, args, env, stderr)
	if err != nil {
		return err
	}
	cfg, err := f.config(sources, env, stderr)
	if err != nil {
		return err
	}
	if name == "plan" {
		if err := job.DryRun(ctx, cfg, stdout); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
	}
	a, err := job.Analyze(ctx, cfg)
	if err != nil {
		return err
	}
	a.WriteText(stdout, name == "validate")
	if a.Invalid() > 0 || len(a.Failed) > 0 {
		if name == "validate" {
			return job.ErrRejected
		}
	}
	return nil
}

const statusUsage = `Usage: backfill status [--checkpoint LOCATION] [--json]
       backfill report [--checkpoint LOCATION] [--json]

status shows a job's progress from its checkpoint: per object, the records
settled, the watermark and errors, the totals, and whether the job is
complete. With shards (--shard), all shards found at the location are shown
and added up. report reprints the job's summary in the same form as the end
of a run (or, with --json, the JSON report).

Examples:
  backfill status --checkpoint .backfill
  backfill report --checkpoint s3://bucket/state/job1 --json

Flags:
`

func cmdStatus(ctx context.Context, args []string, env *environ, stdout, stderr io.Writer, report bool) error {
	name := "status"
	if report {
		name = "report"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	loc := fs.String("checkpoint", job.DefaultCheckpoint, "checkpoint `location` of the job")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() { fmt.Fprint(stderr, statusUsage); fs.PrintDefaults() }
	if _, err := parseFlags(fs, args, env, stderr); err != nil {
		return err
	}
	store, err := checkpoint.Open(ctx, *loc, checkpoint.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	states, err := store.RecoverAll(ctx)
	if err != nil {
		return err
	}
	if len(states) == 0 {
		return fmt.Errorf("%w: no checkpoint at %s", job.ErrUsage, *loc)
	}
	merged := job.MergeStates(states)
	if report {
		rep := job.ReportFromState(merged, *loc)
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		}
		rep.WriteSummary(stdout)
		return nil
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(states)
	}
	if rp, err := job.ReadPlan(ctx, store); err != nil {
		fmt.Fprintf(stdout, "route plan: unreadable: %v\n", err)
	} else if rp != nil {
		rp.WriteText(stdout, true)
	}
	names := make([]string, 0, len(states))
	for n := range states {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		st := states[n]
		label := n
		if label == "" {
			label = "(job)"
		}
		state := "running or stopped"
		if st.Complete {
			state = "complete"
		}
		c := st.Counters
		fmt.Fprintf(stdout, "%s: %s; %d runs; updated %s\n", label, state, st.RunCount, st.Updated.Format("2006-01-02 15:04:05 MST"))
		fmt.Fprintf(stdout, "  events read %d = accepted %d + rejected %d + skipped %d; requests batch %d, httpapi %d; 429s %d; retries %d; re-sent after crashes %d\n",
			c.EventsRead, c.EventsAccepted, c.EventsRejected, c.EventsFiltered, c.RequestsBatch, c.RequestsHTTPAPI, c.Responses429, c.Retries, c.EventsResent)
		if c.EventsForeign > 0 || st.Plan > 0 {
			fmt.Fprintf(stdout, "  route plan %d; %d records read and left to the other shards\n", st.Plan, c.EventsForeign)
		}
		for i, p := range st.Parked {
			if i == 5 {
				fmt.Fprintf(stdout, "  ... and %d more parked ids\n", len(st.Parked)-i)
				break
			}
			fmt.Fprintf(stdout, "  parked for Amplitude's daily quota: %s %s until %s\n", p.Kind, escape.Line(p.ID), p.Until.Format(time.RFC3339))
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  OBJECT\tSTATE\tSETTLED\tWATERMARK\tTOTAL\tERROR")
		urls := make([]string, 0, len(st.Objects))
		for u := range st.Objects {
			urls = append(urls, u)
		}
		sort.Strings(urls)
		for _, u := range urls {
			o := st.Objects[u]
			s := "partial"
			if o.Done {
				s = "done"
			}
			total := "?"
			if o.Total >= 0 {
				total = fmt.Sprint(o.Total)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%s\t%s\n", escape.Line(u), s, o.Read, o.Watermark, total, escape.Line(o.Error))
		}
		tw.Flush()
	}
	if len(states) > 1 {
		c := merged.Counters
		fmt.Fprintf(stdout, "all %d shards: %s; events read %d = accepted %d + rejected %d + skipped %d\n", len(states),
			map[bool]string{true: "complete", false: "not complete"}[merged.Complete], c.EventsRead, c.EventsAccepted, c.EventsRejected, c.EventsFiltered)
	}
	return nil
}
