package reader_test

import (
	"strings"
	"testing"

	"github.com/backfillhq/backfill/reader"
)

// TestCSVParseErrorKeepsRaw: a row the CSV parser refuses reaches the
// dead-letter file with the bytes it consumed. An unterminated quote
// swallows the rest of the object; those rows used to be lost (no data).
func TestCSVParseErrorKeepsRaw(t *testing.T) {
	big := strings.Repeat("9,padding to cross the 64 KiB trim of the kept bytes\n", 3000)
	tests := []struct {
		name, content string
		wantGood      int
		wantRaw       string
	}{
		{"UnterminatedQuoteAtEnd", "a,b\n1,2\n\"x,3\n4,5\n6,7\n", 1, "\"x,3\n4,5\n6,7\n"},
		{"UnterminatedQuoteAfterManyRows", "a,b\n" + big + "\"x,3\n4,5\n", 3000, "\"x,3\n4,5\n"},
		{"BareQuote", "a,b\n1,2\nx\"y,3\n4,5\n", 2, "x\"y,3\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir+"/a.csv", []byte(tt.content))
			r := newReader(t, reader.Options{})
			res := readObject(t, r, localObject(t, r, dir+"/a.csv"), reader.Start{})
			if res.objErr != nil {
				t.Fatalf("object error %v", res.objErr)
			}
			if len(res.recs) != tt.wantGood || len(res.bad) != 1 {
				t.Fatalf("%d records, %d bad, want %d and 1", len(res.recs), len(res.bad), tt.wantGood)
			}
			if got := string(res.bad[0].Raw); got != tt.wantRaw {
				t.Fatalf("Raw = %q, want %q", got, tt.wantRaw)
			}
		})
	}
}
