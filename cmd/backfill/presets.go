package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/backfillhq/backfill/mapping"
)

const presetsUsage = `Usage: backfill presets
       backfill presets show [--yaml] NAME

presets lists the mapping presets shipped in the binary. presets show prints
a preset's field-by-field table (Amplitude field, the source fields it is
read from, what goes to event_properties, what is dropped, filtered or
skipped, how insert_id is derived, which records are profiles), generated
from the preset itself; the README's tables are this output. --yaml prints
the preset's source instead, a starting point for a mapping file.

Examples:
  backfill presets
  backfill presets show mixpanel
  backfill presets show --yaml segment > my-mapping.yaml

Flags:
`

func cmdPresets(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("presets", flag.ContinueOnError)
	asYAML := fs.Bool("yaml", false, "print the preset's YAML source (with show)")
	fs.Usage = func() { fmt.Fprint(stderr, presetsUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		for _, name := range mapping.Presets() {
			s, err := mapping.Preset(name)
			if err != nil {
				return err
			}
			desc, _, _ := strings.Cut(strings.TrimSpace(s.Description), ". ")
			fmt.Fprintf(stdout, "%-18s %s\n", name, strings.TrimSuffix(desc, "."))
		}
		return nil
	}
	if rest[0] != "show" || len(rest) < 2 {
		fs.Usage()
		return usageError("presets: want no argument, or show NAME")
	}
	// Flags may also follow "show" (backfill presets show --yaml NAME).
	sub := flag.NewFlagSet("presets show", flag.ContinueOnError)
	sub.SetOutput(io.Discard)
	subYAML := sub.Bool("yaml", *asYAML, "")
	if err := sub.Parse(rest[1:]); err != nil || sub.NArg() != 1 {
		fs.Usage()
		return usageError("presets show: want one preset NAME (have " + strings.Join(mapping.Presets(), ", ") + ")")
	}
	name := sub.Arg(0)
	if *subYAML {
		src, err := mapping.PresetSource(name)
		if err != nil {
			return usageError(fmt.Sprintf("presets show: %v (have %s)", err, strings.Join(mapping.Presets(), ", ")))
		}
		_, err = stdout.Write(src)
		return err
	}
	out, err := mapping.Describe(name)
	if err != nil {
		return usageError("presets show: " + err.Error())
	}
	_, err = io.WriteString(stdout, out)
	return err
}

func usageError(msg string) error { return fmt.Errorf("%w: %s", errUsage, msg) }
