package backfill

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBoundReason(t *testing.T) {
	short := strings.Repeat("x", MaxReason)
	if got := BoundReason(short); got != short {
		t.Fatalf("a reason of MaxReason bytes was cut: %q", got)
	}
	long := strings.Repeat("x", MaxReason-1) + "é" + "tail"
	got := BoundReason(long)
	if got != strings.Repeat("x", MaxReason-1)+"..." || !utf8.ValidString(got) {
		t.Fatalf("BoundReason cut %q to %q", long, got)
	}
}
