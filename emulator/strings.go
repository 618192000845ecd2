package emulator

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/backfillhq/backfill/amplitude"
	"github.com/backfillhq/backfill/internal/jsonstr"
)

// MaxStringLength is the longest string value Amplitude keeps, in
// characters (amplitude-api.md §4: "≤ 1024 characters"). The docs give the
// limit but not what the server does past it; the official SDKs truncate
// (Go and Python at 1,024), so the emulator truncates too: the event is
// accepted and stored with each longer string value cut to its first 1,024
// characters (Unicode code points). Object keys are kept whole. Throttling,
// the quota and dedupe use the ids as received.
const MaxStringLength = amplitude.MaxStringLength

// truncateStrings returns raw, a valid JSON object, with every string value
// longer than MaxStringLength characters cut to that length, and how many
// it cut. raw itself is returned, without copying, when nothing is cut.
func truncateStrings(raw []byte) ([]byte, int) {
	// A string of more than MaxStringLength characters takes more than
	// MaxStringLength+2 bytes with its quotes: short events are skipped
	// without a scan.
	if len(raw) <= MaxStringLength+2 {
		return raw, 0
	}
	var out []byte
	n, last := 0, 0
	for i := 0; i < len(raw); i++ {
		if raw[i] != '"' {
			continue
		}
		start := i
		for i++; i < len(raw) && raw[i] != '"'; i++ {
			if raw[i] == '\\' {
				i++
			}
		}
		end := i + 1 // raw[start:end] is the string with its quotes
		if end-start-2 <= MaxStringLength || isKey(raw, end) {
			continue
		}
		var s string
		if json.Unmarshal(raw[start:end], &s) != nil || utf8.RuneCountInString(s) <= MaxStringLength {
			continue
		}
		cut, k := 0, 0
		for cut = range s {
			if k == MaxStringLength {
				break
			}
			k++
		}
		out = append(out, raw[last:start]...)
		out, _ = jsonstr.Append(out, s[:cut])
		last = end
		n++
	}
	if n == 0 {
		return raw, 0
	}
	return append(out, raw[last:]...), n
}

// isKey reports whether the string ending before raw[end] is an object key.
func isKey(raw []byte, end int) bool {
	for ; end < len(raw); end++ {
		switch raw[end] {
		case ' ', '\t', '\n', '\r':
			continue
		case ':':
			return true
		}
		return false
	}
	return false
}
