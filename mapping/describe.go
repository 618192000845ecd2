package mapping

import (
	"fmt"
	"sort"
	"strings"
)

// Describe returns the field-by-field table of a shipped preset in
// Markdown, generated from the preset itself: for each Amplitude field the
// source fields it is read from (first that applies wins), then where the
// other keys go, what is dropped, filtered or skipped, how insert_id is
// derived, which records are profiles, and the preset's notes. The README's
// per-preset tables are this output ("backfill presets show NAME").
func Describe(name string) (string, error) {
	s, err := Preset(name)
	if err != nil {
		return "", err
	}
	r, err := resolve(s, 0)
	if err != nil {
		return "", err
	}
	return DescribeSpec(r), nil
}

// DescribeSpec is Describe for any spec (a mapping file's, after extends
// is resolved by the caller or not at all).
func DescribeSpec(s *Spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#### `%s`\n\n", s.Name)
	if d := strings.TrimSpace(s.Description); d != "" {
		fmt.Fprintf(&b, "%s\n\n", d)
	}
	b.WriteString("| Amplitude field | Source (the first rule that yields a value wins) |\n|---|---|\n")
	for _, t := range sortedTargets(s.Fields) {
		parts := make([]string, 0, len(s.Fields[t]))
		for _, r := range s.Fields[t] {
			parts = append(parts, describeRule(r))
		}
		fmt.Fprintf(&b, "| `%s` | %s |\n", cell(t), cell(strings.Join(parts, "; else ")))
	}
	b.WriteString("\n")
	var lines []string
	if s.Passthrough != nil && *s.Passthrough {
		lines = append(lines, "Documented Amplitude fields at the root of the record are kept (converted to their documented type) unless a rule above maps them.")
	}
	from := "the record's root"
	if s.Unmapped != nil && s.Unmapped.From != "" {
		from = "`" + s.Unmapped.From + "`"
	}
	to := "event_properties"
	if s.Unmapped != nil && s.Unmapped.To != "" {
		to = s.Unmapped.To
	}
	if to == "drop" {
		lines = append(lines, fmt.Sprintf("Dropped: every key of %s that no rule above reads.", from))
	} else {
		lines = append(lines, fmt.Sprintf("Other keys of %s (those no rule above reads) go to `%s`.", from, to))
	}
	if p := s.Properties; p != nil {
		if len(p.Drop) > 0 {
			lines = append(lines, "Dropped from `event_properties`: "+codeList(p.Drop)+".")
		}
		if len(p.Rename) > 0 {
			var kv []string
			for k, v := range p.Rename {
				kv = append(kv, "`"+k+"` → `"+v+"`")
			}
			sort.Strings(kv)
			lines = append(lines, "Renamed in `event_properties`: "+strings.Join(kv, ", ")+".")
		}
		if len(p.Allow) > 0 {
			lines = append(lines, "Only these `event_properties` are kept: "+codeList(p.Allow)+".")
		}
	}
	if ii := s.InsertID; ii != nil && len(ii.Hash) > 0 {
		l := "`insert_id`, when no rule above gives one: `bfh-` + SHA-256 of " + altsList(ii.Hash)
		if len(ii.Require) > 0 {
			l += ", when " + altsList(ii.Require) + " is present"
		}
		lines = append(lines, l+"; otherwise the position-derived `bf-` id.")
	} else {
		lines = append(lines, "`insert_id`, when no rule above gives one: the position-derived `bf-` id.")
	}
	if len(s.ProfileWhen) > 0 {
		lines = append(lines, "Profiles (sent before the events that follow them, without `$skip_user_properties_sync`, no event properties): records where "+condSets(s.ProfileWhen)+".")
	}
	if len(s.ExcludeWhen) > 0 {
		lines = append(lines, "Skipped as excluded at the source (counted as skipped; `--include-excluded` sends them): records where "+condSets(s.ExcludeWhen)+".")
	}
	if f := s.Filters; f != nil {
		if len(f.DropEventTypes) > 0 {
			lines = append(lines, "Filtered (dead-lettered as `filtered`): event types "+codeList(f.DropEventTypes)+".")
		}
		if len(f.KeepEventTypes) > 0 {
			lines = append(lines, "Only these event types are kept: "+codeList(f.KeepEventTypes)+".")
		}
		if len(f.SkipWhen) > 0 {
			lines = append(lines, "Filtered (dead-lettered as `filtered`): records where "+condSets(f.SkipWhen)+".")
		}
		if f.TimeFrom != "" || f.TimeTo != "" {
			lines = append(lines, fmt.Sprintf("Filtered: events outside [%s, %s).", f.TimeFrom, f.TimeTo))
		}
	}
	if len(s.DecodeJSON) > 0 {
		lines = append(lines, "JSON text in "+codeList(s.DecodeJSON)+" is decoded first.")
	}
	lines = append(lines, s.Notes...)
	for _, l := range lines {
		fmt.Fprintf(&b, "- %s\n", l)
	}
	return b.String()
}

// sortedTargets orders targets as the events are encoded: top-level fields
// in canonical order, each followed by its dotted targets.
func sortedTargets(fields map[string]Rules) []string {
	out := make([]string, 0, len(fields))
	for t := range fields {
		out = append(out, t)
	}
	slot := func(t string) int {
		top, _, _ := strings.Cut(t, ".")
		if i, ok := fieldIndex[top]; ok {
			return i
		}
		return len(fieldNames)
	}
	sort.Slice(out, func(i, j int) bool {
		if a, b := slot(out[i]), slot(out[j]); a != b {
			return a < b
		}
		return out[i] < out[j]
	})
	return out
}

func describeRule(r Rule) string {
	var src string
	switch {
	case len(r.Pair) == 2:
		src = fmt.Sprintf("{`%s`: `%s`}", r.Pair[0], r.Pair[1])
	case r.Const != nil:
		src = fmt.Sprintf("`%v`", r.Const)
	case r.Template != "":
		src = fmt.Sprintf("`\"%s\"`", r.Template)
	default:
		src = codeOr(r.From)
	}
	var mods []string
	if r.KVKey != "" {
		src = fmt.Sprintf("the `%s` entry of %s", r.KVKey, src)
	}
	if r.Flatten == "kv" {
		mods = append(mods, "key/value list made an object")
	}
	if r.Time != "" {
		mods = append(mods, "time "+r.Time)
	}
	if r.Type != "" {
		mods = append(mods, "as "+r.Type)
	}
	if r.IfPrefix != "" {
		mods = append(mods, fmt.Sprintf("if it starts with `%s`", r.IfPrefix))
	}
	if r.UnlessPrefix != "" {
		mods = append(mods, fmt.Sprintf("unless it starts with `%s`", r.UnlessPrefix))
	}
	if r.TrimPrefix != "" {
		mods = append(mods, fmt.Sprintf("without a `%s` prefix", r.TrimPrefix))
	}
	if r.UnlessSameAs != "" {
		mods = append(mods, fmt.Sprintf("unless equal to `%s`", r.UnlessSameAs))
	}
	if len(r.Values) > 0 {
		keys := make([]string, 0, len(r.Values))
		for k := range r.Values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		kv := make([]string, len(keys))
		for i, k := range keys {
			kv[i] = fmt.Sprintf("`%s` → `%s`", k, r.Values[k])
		}
		mods = append(mods, "only "+strings.Join(kv, ", "))
	}
	if r.Lower {
		mods = append(mods, "lower-cased")
	}
	if r.Lenient {
		mods = append(mods, "ignored if not convertible")
	}
	if r.Keep {
		mods = append(mods, "also kept as an event property")
	}
	if len(r.When) > 0 {
		mods = append(mods, "when "+conds(r.When))
	}
	if len(r.Unless) > 0 {
		mods = append(mods, "unless "+conds(r.Unless))
	}
	if len(mods) > 0 {
		src += " (" + strings.Join(mods, ", ") + ")"
	}
	return src
}

func conds(m map[string]Strings) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		var alts []string
		for _, v := range m[k] {
			switch v {
			case "":
				alts = append(alts, "absent")
			case "*":
				alts = append(alts, "present")
			default:
				alts = append(alts, "`"+v+"`")
			}
		}
		if len(alts) == 1 && (alts[0] == "absent" || alts[0] == "present") {
			parts = append(parts, fmt.Sprintf("`%s` %s", k, alts[0]))
			continue
		}
		parts = append(parts, fmt.Sprintf("`%s` is %s", k, strings.Join(alts, " or ")))
	}
	return strings.Join(parts, " and ")
}

func condSets(css []map[string]Strings) string {
	parts := make([]string, len(css))
	for i, cs := range css {
		parts[i] = conds(cs)
	}
	return strings.Join(parts, "; or ")
}

func codeOr(xs []string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = "`" + x + "`"
	}
	return strings.Join(parts, " or ")
}

func codeList(xs []string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = "`" + x + "`"
	}
	return strings.Join(parts, ", ")
}

func altsList(xs []Strings) string {
	parts := make([]string, len(xs))
	for i, alts := range xs {
		parts[i] = codeOr(alts)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// cell escapes a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
