// Package escape makes untrusted text (object names, field values, server
// messages) safe to print on a terminal or write into a line-based log: a
// newline in an object name must not forge a log line, and an ESC must not
// send control sequences to the user's terminal.
package escape

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Line returns s with every character that could break a line or drive a
// terminal written as a Go escape: \n, \r, \t, \x1b and other C0/C1
// controls and DEL as \xNN or \u00NN, Unicode line/paragraph separators
// and bidirectional overrides as \uNNNN, and bytes that are not UTF-8 as
// \xNN. Printable text, including non-ASCII letters, is kept as is, and a
// string that needs nothing is returned unchanged (no allocation).
func Line(s string) string {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if unsafe(r, n) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && unsafe(r, n):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafe(r, n):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func unsafe(r rune, n int) bool {
	switch {
	case r == utf8.RuneError && n == 1:
		return true
	case r < 0x20, r == 0x7f, 0x80 <= r && r <= 0x9f:
		return true
	case r == '\u2028', r == '\u2029': // line and paragraph separators
		return true
	case 0x202a <= r && r <= 0x202e, 0x2066 <= r && r <= 0x2069: // bidi embeddings, overrides, isolates
		return true
	}
	return unicode.Is(unicode.Cc, r)
}
