package main

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// commands lists the subcommands, for help and shell completion.
var commands = []string{"run", "demo", "plan", "validate", "status", "report", "emulator", "presets", "version", "completion", "help"}

// flagLine matches a flag in the output of flag.PrintDefaults.
var flagLine = regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)

// commandFlags returns the flag names of a subcommand, read from its own
// -h output so that completion never drifts from the real flag sets.
func commandFlags(cmd string) []string {
	if cmd == "completion" || cmd == "help" || cmd == "version" {
		return nil
	}
	var out strings.Builder
	ctx := context.Background()
	Main(ctx, ctx, []string{cmd, "-h"}, io.Discard, &out)
	var names []string
	for _, m := range flagLine.FindAllStringSubmatch(out.String(), -1) {
		names = append(names, m[1])
	}
	sort.Strings(names)
	return names
}

const completionUsage = `Usage: backfill completion bash|zsh

Prints a shell completion script for subcommands and flags.

  source <(backfill completion bash)                       # bash, this shell
  backfill completion bash > /etc/bash_completion.d/backfill
  backfill completion zsh > "${fpath[1]}/_backfill"        # zsh
`

func cmdCompletion(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh") {
		fmt.Fprint(stderr, completionUsage)
		return errUsageShown
	}
	var b strings.Builder
	b.WriteString("# backfill shell completion\n")
	if args[0] == "zsh" {
		b.WriteString("#compdef backfill\nautoload -U +X bashcompinit && bashcompinit\n")
	}
	b.WriteString("_backfill() {\n  local cur=\"${COMP_WORDS[COMP_CWORD]}\" cmd=\"${COMP_WORDS[1]}\"\n")
	fmt.Fprintf(&b, "  if [ \"$COMP_CWORD\" -eq 1 ]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); return; fi\n", strings.Join(commands, " "))
	b.WriteString("  local flags=\"\"\n  case \"$cmd\" in\n")
	for _, c := range commands {
		fl := commandFlags(c)
		if len(fl) == 0 {
			continue
		}
		for i := range fl {
			fl[i] = "--" + fl[i]
		}
		fmt.Fprintf(&b, "    %s) flags=%q ;;\n", c, strings.Join(fl, " "))
	}
	b.WriteString("  esac\n  if [[ \"$cur\" == -* ]]; then COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\")); else COMPREPLY=($(compgen -f -- \"$cur\")); fi\n}\n")
	b.WriteString("complete -o filenames -F _backfill backfill\n")
	_, err := io.WriteString(stdout, b.String())
	return err
}
