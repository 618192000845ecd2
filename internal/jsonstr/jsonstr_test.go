package jsonstr_test

import (
	"encoding/json"
	"testing"

	"github.com/backfillhq/backfill/internal/jsonstr"
)

func TestAppend(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"plain", `"plain"`, true},
		{"q\"b\\", `"q\"b\\"`, true},
		{"a\nb\tc\rd\x01", `"a\nb\tc\rd\u0001"`, true},
		{"héllo ✓", `"héllo ✓"`, true},
		{"bad\xffbyte", `"bad\ufffdbyte"`, false},
	}
	for _, tt := range tests {
		got, ok := jsonstr.Append(nil, tt.in)
		if string(got) != tt.want || ok != tt.wantOK {
			t.Errorf("Append(%q) = %s, %v; want %s, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
		if !json.Valid(got) {
			t.Errorf("Append(%q) = %s is not valid JSON", tt.in, got)
		}
		if b, _ := jsonstr.Append([]byte("x"), []byte(tt.in)); string(b) != "x"+tt.want {
			t.Errorf("Append([]byte %q) = %s", tt.in, b)
		}
	}
}
