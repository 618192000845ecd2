package emulator

import (
	"bytes"
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
// It jumps between quotes with bytes.IndexByte and decodes only strings
// that are long and hold escapes, so events without long strings cost
// about one memchr pass.
func truncateStrings(raw []byte) ([]byte, int) {
	// A string of more than MaxStringLength characters takes more than
	// MaxStringLength+2 bytes with its quotes: short events are skipped
	// without a scan.
	if len(raw) <= MaxStringLength+2 {
		return raw, 0
	}
	var out []byte
	n, last := 0, 0
	for i := 0; ; {
		j := bytes.IndexByte(raw[i:], '"')
		if j < 0 {
			break
		}
		start := i + j
		end := closingQuote(raw, start)
		if end < 0 {
			return raw, 0 // not valid JSON: leave it alone
		}
		i = end + 1
		body := raw[start+1 : end]
		if len(body) <= MaxStringLength || isKey(raw, end+1) {
			continue
		}
		cut := -1 // bytes of body to keep, when no escape is involved
		var s string
		switch {
		case bytes.IndexByte(body, '\\') >= 0:
			if json.Unmarshal(raw[start:end+1], &s) != nil || utf8.RuneCountInString(s) <= MaxStringLength {
				continue
			}
			k := 0
			for idx := range s {
				if k == MaxStringLength {
					s = s[:idx]
					break
				}
				k++
			}
		default:
			if utf8.RuneCount(body) <= MaxStringLength {
				continue
			}
			cut = 0
			for k := 0; k < MaxStringLength; k++ {
				_, size := utf8.DecodeRune(body[cut:])
				cut += size
			}
		}
		out = append(out, raw[last:start]...)
		if cut >= 0 {
			out = append(out, '"')
			out = append(out, body[:cut]...)
			out = append(out, '"')
		} else {
			out, _ = jsonstr.Append(out, s)
		}
		last = end + 1
		n++
	}
	if n == 0 {
		return raw, 0
	}
	return append(out, raw[last:]...), n
}

// closingQuote returns the index of the quote that closes the string
// opening at raw[start], or -1.
func closingQuote(raw []byte, start int) int {
	for k := start + 1; ; {
		q := bytes.IndexByte(raw[k:], '"')
		if q < 0 {
			return -1
		}
		end := k + q
		bs := 0
		for p := end - 1; p > start && raw[p] == '\\'; p-- {
			bs++
		}
		if bs%2 == 0 {
			return end
		}
		k = end + 1
	}
}

// isKey reports whether the string ending before raw[i] is an object key.
func isKey(raw []byte, i int) bool {
	for ; i < len(raw); i++ {
		switch raw[i] {
		case ' ', '\t', '\n', '\r':
			continue
		case ':':
			return true
		}
		return false
	}
	return false
}
