package mapping

import (
	"fmt"
	"strings"

	"github.com/valyala/fastjson"
)

// path is a compiled dotted path: "context.app.version" -> [context app
// version]. A literal dot inside a key is written "\." and a backslash "\\".
// A segment that is a decimal number also indexes arrays.
type path []string

func parsePath(s string) (path, error) {
	if s == "" {
		return nil, fmt.Errorf("empty path")
	}
	var segs path
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 >= len(s) || (s[i+1] != '.' && s[i+1] != '\\') {
				return nil, fmt.Errorf("path %q: bad escape (use \\. or \\\\)", s)
			}
			cur.WriteByte(s[i+1])
			i++
		case '.':
			if cur.Len() == 0 {
				return nil, fmt.Errorf("path %q: empty segment", s)
			}
			segs = append(segs, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() == 0 {
		return nil, fmt.Errorf("path %q: empty segment", s)
	}
	return append(segs, cur.String()), nil
}

func (p path) String() string {
	parts := make([]string, len(p))
	for i, s := range p {
		parts[i] = strings.NewReplacer(`\`, `\\`, `.`, `\.`).Replace(s)
	}
	return strings.Join(parts, ".")
}

// hasPrefix reports whether q starts with all segments of p.
func (p path) hasPrefix(q path) bool {
	if len(q) > len(p) {
		return false
	}
	for i := range q {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

// lookup resolves p inside v; nil when any segment is missing.
func (p path) lookup(v *fastjson.Value) *fastjson.Value {
	if len(p) == 0 {
		return v
	}
	return v.Get(p...)
}
