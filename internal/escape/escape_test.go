package escape_test

import (
	"testing"

	"github.com/backfillhq/backfill/internal/escape"
)

func TestLine(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"Plain", "s3://bucket/dt=2024-01-01/part-0.jsonl", "s3://bucket/dt=2024-01-01/part-0.jsonl"},
		{"Unicode", "événements/日本.jsonl", "événements/日本.jsonl"},
		{"Newline", "a.jsonl\nlevel=ERROR msg=forged", `a.jsonl\nlevel=ERROR msg=forged`},
		{"CR", "a\rb", `a\rb`},
		{"ESC", "a\x1b[31mred\x1b[0m.jsonl", `a\x1b[31mred\x1b[0m.jsonl`},
		{"Tab", "a\tb", `a\tb`},
		{"DEL", "a\x7fb", `a\x7fb`},
		{"C1", "a\u009bb", `a\u009bb`},
		{"InvalidUTF8", "a\xffb", `a\xffb`},
		{"LineSeparator", "a\u2028b", `a\u2028b`},
		{"BidiOverride", "a\u202eb", `a\u202eb`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := escape.Line(tt.in); got != tt.want {
				t.Fatalf("Line(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzLine(f *testing.F) {
	f.Add("a\nb\x1b\xff")
	f.Fuzz(func(t *testing.T, s string) {
		out := escape.Line(s)
		for i := 0; i < len(out); i++ {
			if c := out[i]; c < 0x20 || c == 0x7f {
				t.Fatalf("Line(%q) = %q keeps control byte %#x", s, out, c)
			}
		}
	})
}
