package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// environ gives access to the process environment (injectable for tests)
// and remembers the API key so that errors can be redacted.
type environ struct {
	lookup func(string) (string, bool)
	apiKey string
}

func (e *environ) get(name string) string {
	if e.lookup == nil {
		return ""
	}
	v, _ := e.lookup(name)
	return v
}

// envName is the environment variable of a flag: BACKFILL_ + upper snake.
func envName(flagName string) string {
	return "BACKFILL_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// listFlag is a repeatable string flag; a comma-separated value adds several.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// parseFlags parses args with precedence flags > environment (BACKFILL_*)
// > config file (--config, or BACKFILL_CONFIG) > defaults. The config file
// is YAML (or JSON) whose keys are flag names (dashes or underscores); a
// "sources" list adds positional sources. It returns the positional args.
func parseFlags(fs *flag.FlagSet, args []string, env *environ, stderr io.Writer) ([]string, error) {
	var configFile string
	if fs.Lookup("config") == nil {
		fs.StringVar(&configFile, "config", "", "read flag values from this YAML/JSON `file` (flags > BACKFILL_* env > file > defaults)")
	}
	fs.SetOutput(stderr)
	// Flags may follow the sources (backfill run gs://b/x/ --preset ga4),
	// as users write them; "--" ends the flags.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, errUsageShown
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional, args = append(positional, rest[0]), rest[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if configFile == "" {
		configFile = env.get("BACKFILL_CONFIG")
	}
	file := map[string]any{}
	var sources []string
	if configFile != "" {
		data, err := os.ReadFile(configFile)
		if err != nil {
			return nil, fmt.Errorf("%w: read config: %v", errUsage, err)
		}
		if err := yaml.Unmarshal(data, &file); err != nil {
			return nil, fmt.Errorf("%w: config %s: %v", errUsage, configFile, err)
		}
		norm := map[string]any{}
		for k, v := range file {
			norm[strings.ReplaceAll(strings.ToLower(k), "_", "-")] = v
		}
		file = norm
		if s, ok := file["sources"]; ok {
			delete(file, "sources")
			list, err := stringList(s)
			if err != nil {
				return nil, fmt.Errorf("%w: config %s: sources: %v", errUsage, configFile, err)
			}
			sources = list
		}
		var unknown []string
		for k := range file {
			if fs.Lookup(k) == nil {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return nil, fmt.Errorf("%w: config %s: unknown keys: %s", errUsage, configFile, strings.Join(unknown, ", "))
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] || f.Name == "config" {
			return
		}
		if v, ok := env.lookupFlag(f.Name); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%w: %s=%q: %v", errUsage, envName(f.Name), v, e)
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			list, e := stringList(v)
			if e != nil {
				err = fmt.Errorf("%w: config %s: %s: %v", errUsage, configFile, f.Name, e)
				return
			}
			for _, s := range list {
				if e := f.Value.Set(s); e != nil {
					err = fmt.Errorf("%w: config %s: %s: %v", errUsage, configFile, f.Name, e)
					return
				}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	pos := positional
	if len(pos) == 0 {
		pos = sources
	}
	return pos, nil
}

func (e *environ) lookupFlag(name string) (string, bool) {
	if e.lookup == nil {
		return "", false
	}
	v, ok := e.lookup(envName(name))
	return v, ok && v != ""
}

func stringList(v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case bool:
		return []string{strconv.FormatBool(x)}, nil
	case int:
		return []string{strconv.Itoa(x)}, nil
	case float64:
		return []string{strconv.FormatFloat(x, 'f', -1, 64)}, nil
	case []any:
		var out []string
		for _, e := range x {
			s, err := stringList(e)
			if err != nil {
				return nil, err
			}
			out = append(out, s...)
		}
		return out, nil
	case map[string]any:
		var kv []string
		for k, val := range x {
			s, err := stringList(val)
			if err != nil || len(s) != 1 {
				return nil, fmt.Errorf("value of %q must be a scalar", k)
			}
			kv = append(kv, k+":"+s[0])
		}
		sort.Strings(kv)
		return []string{strings.Join(kv, ",")}, nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("unsupported value %v", v)
}

var errUsage = errors.New("usage")
