package mapping

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed presets/*.yaml
var presetFS embed.FS

// DefaultPreset is the preset used when none is named.
const DefaultPreset = "amplitude"

// Spec is a declarative mapping from source records to Amplitude events.
// Presets are Specs shipped in the binary; a mapping file is a Spec in YAML
// or JSON (JSON is read as YAML). See the README's "Mapping files" section for the schema.
type Spec struct {
	// Name identifies the spec in reports.
	Name string `yaml:"name,omitempty"`
	// Extends names a preset this spec starts from; its own sections are
	// merged over the preset's (see "Mapping files" in the README).
	Extends string `yaml:"extends,omitempty"`
	// Description is free text.
	Description string `yaml:"description,omitempty"`
	// Passthrough keeps every documented Amplitude top-level field found at
	// the root of the record (with type coercion), unless Fields maps it.
	Passthrough *bool `yaml:"passthrough,omitempty"`
	// DecodeJSON lists source paths whose value may be a JSON-encoded object
	// or array in a string (CSV cells, some warehouse exports); such strings
	// are decoded before mapping.
	DecodeJSON []string `yaml:"decode_json,omitempty"`
	// Fields maps a target (an Amplitude field such as "user_id", or a
	// dotted path below an object field such as "event_properties.plan" or
	// "user_properties.$set.email") to rules tried in order; the first rule
	// that yields a non-empty value wins. A null entry removes the target
	// inherited from Extends.
	Fields map[string]Rules `yaml:"fields,omitempty"`
	// Unmapped says where the keys of one source object that no rule used
	// go.
	Unmapped *Unmapped `yaml:"unmapped,omitempty"`
	// Properties renames, drops or allow-lists event_properties keys after
	// they are assembled.
	Properties *Properties `yaml:"properties,omitempty"`
	// Filters drop events; dropped records fail with ErrFiltered.
	Filters *Filters `yaml:"filters,omitempty"`
	// InsertID says how insert_id is derived when no rule maps it.
	InsertID *InsertID `yaml:"insert_id,omitempty"`
	// ExcludeWhen lists condition sets (source path -> values, all must
	// hold) of records the source itself excluded from Amplitude, such as
	// Segment messages with integrations {"Amplitude": false}. They are
	// skipped (ErrSkipped: settled, counted, neither sent nor
	// dead-lettered) unless Options.IncludeExcluded is set.
	ExcludeWhen []map[string]Strings `yaml:"exclude_when,omitempty"`
	// ProfileWhen lists condition sets of records that are profiles (a
	// vendor's user or group state rather than an event: Mixpanel People,
	// PostHog persons). Their events carry backfill.Event.Profile, so the
	// pipeline sends them before the events that follow them.
	ProfileWhen []map[string]Strings `yaml:"profile_when,omitempty"`
	// Notes are short remarks on what the spec drops or decides, printed
	// by Describe (and so in the README's per-preset tables).
	Notes []string `yaml:"notes,omitempty"`
}

// Rule is one way to compute a target value. Exactly one of From, Const and
// Template is set.
type Rule struct {
	// From lists source paths; the first with a non-empty value is used
	// (null, "", [] and {} count as empty).
	From Strings `yaml:"from,omitempty"`
	// Const is a constant value.
	Const any `yaml:"const,omitempty"`
	// Template builds a string from source paths in braces:
	// "Viewed {name} Page". The rule yields nothing when any path is empty.
	Template string `yaml:"template,omitempty"`

	// When lists conditions that must all hold: source path -> accepted
	// values (scalars compared as text; "" matches an absent value).
	When map[string]Strings `yaml:"when,omitempty"`
	// Unless lists conditions of which none may hold.
	Unless map[string]Strings `yaml:"unless,omitempty"`
	// IfPrefix uses the value only when it starts with this prefix.
	IfPrefix string `yaml:"if_prefix,omitempty"`
	// UnlessPrefix skips the value when it starts with this prefix.
	UnlessPrefix string `yaml:"unless_prefix,omitempty"`
	// TrimPrefix removes this prefix from the value.
	TrimPrefix string `yaml:"trim_prefix,omitempty"`
	// UnlessSameAs skips the value when it equals the value at this path.
	UnlessSameAs string `yaml:"unless_same_as,omitempty"`

	// KVKey picks, from an array of {key, value} entries (GA4
	// event_params), the value of the entry with this key.
	KVKey string `yaml:"kv_key,omitempty"`
	// Flatten "kv" turns an array of {key, value:{string_value, int_value,
	// float_value, double_value}} entries into an object.
	Flatten string `yaml:"flatten,omitempty"`
	// Time converts to integer ms: s, ms, us, ns, iso or auto (by
	// magnitude). ISO-8601 strings are accepted with every unit.
	Time string `yaml:"time,omitempty"`
	// Type casts the value: string, int, float, bool. Top-level Amplitude
	// fields are always cast to their documented type.
	Type string `yaml:"type,omitempty"`
	// Lower lower-cases a string value.
	Lower bool `yaml:"lower,omitempty"`
	// Lenient makes a value that cannot be converted count as absent (the
	// next rule is tried) instead of rejecting the record. Presets use it
	// for optional fields read from free-form vendor properties.
	Lenient bool `yaml:"lenient,omitempty"`
	// Values maps a scalar source value (compared as text) to an output
	// string: {web: Web, iphone: iOS}. A value not listed yields nothing,
	// so the next rule is tried.
	Values map[string]string `yaml:"values,omitempty"`
	// Keep leaves the source keys the rule reads in the unmapped object
	// too (by default a key a rule reads is consumed), so that a value
	// that also becomes an Amplitude field stays an event property.
	Keep bool `yaml:"keep,omitempty"`
	// Pair builds a one-entry object {value at Pair[0]: value at Pair[1]}
	// (PostHog's $group_type and $group_key become groups). It stands in
	// for From; the rule yields nothing when either value is empty.
	Pair []string `yaml:"pair,omitempty"`
}

// Rules is a list of rules tried in order. In YAML it may be written as a
// path string, a single rule, or a list of paths or rules.
type Rules []Rule

// Strings is a list of strings that may be written as a single string.
type Strings []string

// Unmapped says what happens to the keys of the source object at From that
// no rule consumed.
type Unmapped struct {
	// From is the path of the scanned object; "" is the record root.
	From string `yaml:"from,omitempty"`
	// To is event_properties (default), user_properties or drop.
	To string `yaml:"to,omitempty"`
}

// Properties edits the top-level keys of event_properties.
type Properties struct {
	Rename map[string]string `yaml:"rename,omitempty"` // old -> new
	Drop   []string          `yaml:"drop,omitempty"`   // exact keys, or prefixes ending in "*"
	Allow  []string          `yaml:"allow,omitempty"`  // when set, keep only these (after Rename)
}

// Filters drop records. Dropped records fail with ErrFiltered.
type Filters struct {
	DropEventTypes []string `yaml:"drop_event_types,omitempty"`
	KeepEventTypes []string `yaml:"keep_event_types,omitempty"`
	// TimeFrom (inclusive) and TimeTo (exclusive) bound the event time; an
	// RFC 3339 date-time or a YYYY-MM-DD date (UTC midnight).
	TimeFrom string `yaml:"time_from,omitempty"`
	TimeTo   string `yaml:"time_to,omitempty"`
	// SkipWhen drops records matching any of these condition sets
	// (source path -> values, all must hold).
	SkipWhen []map[string]Strings `yaml:"skip_when,omitempty"`
}

// InsertID configures derived insert_ids. A source insert_id (a "fields"
// rule for insert_id) always wins.
type InsertID struct {
	// Hash lists source paths whose values are hashed into the insert_id:
	// "bfh-" + the first 32 hex digits of SHA-256 over the values joined by
	// 0x1f. Absent values hash as "". An entry may be a list of
	// alternative paths (the first non-empty one is used), for vendors
	// whose export shapes name the same field differently.
	Hash []Strings `yaml:"hash,omitempty"`
	// Require lists paths (or lists of alternatives) that must be
	// non-empty for Hash to be used; otherwise the position-derived id
	// (DeriveInsertID) is used.
	Require []Strings `yaml:"require,omitempty"`
}

// Errors returned while loading specs.
var (
	// ErrUnknownPreset is returned for a preset name that is not shipped.
	ErrUnknownPreset = errors.New("unknown preset")
	// ErrInvalidSpec is returned for a mapping spec that does not compile.
	ErrInvalidSpec = errors.New("invalid mapping spec")
)

var ruleKeys = []string{"from", "const", "template", "when", "unless", "if_prefix", "unless_prefix",
	"trim_prefix", "unless_same_as", "kv_key", "flatten", "time", "type", "lower", "lenient", "values", "keep", "pair"}

// UnmarshalYAML accepts "path", {rule}, or a list of either.
func (r *Rules) UnmarshalYAML(n *yaml.Node) error {
	one := func(n *yaml.Node) (Rule, error) {
		switch n.Kind {
		case yaml.ScalarNode:
			return Rule{From: Strings{n.Value}}, nil
		case yaml.MappingNode:
			for i := 0; i < len(n.Content); i += 2 {
				if k := n.Content[i].Value; !slices.Contains(ruleKeys, k) {
					return Rule{}, fmt.Errorf("line %d: unknown rule key %q", n.Content[i].Line, k)
				}
			}
			var x Rule
			err := n.Decode(&x)
			return x, err
		}
		return Rule{}, fmt.Errorf("line %d: a rule is a path or a mapping", n.Line)
	}
	if n.Kind == yaml.SequenceNode {
		out := make(Rules, 0, len(n.Content))
		for _, c := range n.Content {
			x, err := one(c)
			if err != nil {
				return err
			}
			out = append(out, x)
		}
		*r = out
		return nil
	}
	x, err := one(n)
	if err != nil {
		return err
	}
	*r = Rules{x}
	return nil
}

// UnmarshalYAML accepts a string or a list of strings.
func (s *Strings) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = Strings{n.Value}
		return nil
	}
	var xs []string
	if err := n.Decode(&xs); err != nil {
		return err
	}
	*s = xs
	return nil
}

// ParseSpec reads a spec from YAML or JSON. Unknown keys are errors.
func ParseSpec(data []byte) (*Spec, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Spec
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty document", ErrInvalidSpec)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalidSpec, err)
	}
	return &s, nil
}

// LoadSpec reads a mapping file (YAML or JSON).
func LoadSpec(file string) (*Spec, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read mapping %s: %w", file, err)
	}
	s, err := ParseSpec(data)
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", file, err)
	}
	if s.Name == "" {
		s.Name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	}
	return s, nil
}

// Presets returns the names of the shipped presets, sorted.
func Presets() []string {
	ents, _ := presetFS.ReadDir("presets")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// Preset returns a copy of the shipped preset name ("" means DefaultPreset).
func Preset(name string) (*Spec, error) {
	if name == "" {
		name = DefaultPreset
	}
	data, err := presetFS.ReadFile("presets/" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("%w %q (have %s)", ErrUnknownPreset, name, strings.Join(Presets(), ", "))
	}
	s, err := ParseSpec(data)
	if err != nil {
		return nil, fmt.Errorf("preset %s: %w", name, err)
	}
	return s, nil
}

// PresetSource returns the YAML text of a shipped preset, for
// "backfill presets show NAME"-style commands and documentation.
func PresetSource(name string) ([]byte, error) {
	data, err := presetFS.ReadFile("presets/" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownPreset, name)
	}
	return data, nil
}

// resolve returns s merged over the chain of specs it extends.
func resolve(s *Spec, depth int) (*Spec, error) {
	if s.Extends == "" {
		return s, nil
	}
	if depth > 8 {
		return nil, fmt.Errorf("%w: extends chain too deep", ErrInvalidSpec)
	}
	base, err := Preset(s.Extends)
	if err != nil {
		return nil, err
	}
	if base, err = resolve(base, depth+1); err != nil {
		return nil, err
	}
	return merge(base, s), nil
}

// merge lays child over base: scalar settings and whole Unmapped/InsertID
// sections replace, Fields entries replace per target (null removes),
// list settings append, Properties.Rename merges per key, Properties.Allow
// and filter time bounds replace when set.
func merge(base, child *Spec) *Spec {
	out := *base
	out.Name = child.Name
	if out.Name == "" {
		out.Name = base.Name
	}
	out.Extends = ""
	if child.Description != "" {
		out.Description = child.Description
	}
	if child.Passthrough != nil {
		out.Passthrough = child.Passthrough
	}
	out.DecodeJSON = append(slices.Clone(base.DecodeJSON), child.DecodeJSON...)
	out.Fields = make(map[string]Rules, len(base.Fields)+len(child.Fields))
	for k, v := range base.Fields {
		out.Fields[k] = v
	}
	for k, v := range child.Fields {
		if v == nil {
			delete(out.Fields, k)
			continue
		}
		out.Fields[k] = v
	}
	if child.Unmapped != nil {
		out.Unmapped = child.Unmapped
	}
	if child.InsertID != nil {
		out.InsertID = child.InsertID
	}
	out.ExcludeWhen = append(slices.Clone(base.ExcludeWhen), child.ExcludeWhen...)
	out.ProfileWhen = append(slices.Clone(base.ProfileWhen), child.ProfileWhen...)
	out.Notes = append(slices.Clone(base.Notes), child.Notes...)
	if child.Properties != nil {
		p := Properties{}
		if base.Properties != nil {
			p = *base.Properties
		}
		rn := make(map[string]string)
		for k, v := range p.Rename {
			rn[k] = v
		}
		for k, v := range child.Properties.Rename {
			rn[k] = v
		}
		p.Rename = rn
		p.Drop = append(slices.Clone(p.Drop), child.Properties.Drop...)
		if child.Properties.Allow != nil {
			p.Allow = child.Properties.Allow
		}
		out.Properties = &p
	}
	if child.Filters != nil {
		f := Filters{}
		if base.Filters != nil {
			f = *base.Filters
		}
		c := child.Filters
		f.DropEventTypes = append(slices.Clone(f.DropEventTypes), c.DropEventTypes...)
		if c.KeepEventTypes != nil {
			f.KeepEventTypes = c.KeepEventTypes
		}
		if c.TimeFrom != "" {
			f.TimeFrom = c.TimeFrom
		}
		if c.TimeTo != "" {
			f.TimeTo = c.TimeTo
		}
		f.SkipWhen = append(slices.Clone(f.SkipWhen), c.SkipWhen...)
		out.Filters = &f
	}
	return &out
}

// onlyFilters reports whether s changes nothing but filters, name and
// description (so the amplitude fast path still applies).
func (s *Spec) onlyFilters() bool {
	return s.Passthrough == nil && len(s.DecodeJSON) == 0 && len(s.Fields) == 0 &&
		s.Unmapped == nil && s.Properties == nil && s.InsertID == nil &&
		len(s.ExcludeWhen) == 0 && len(s.ProfileWhen) == 0
}
