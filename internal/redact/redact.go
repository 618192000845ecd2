// Package redact hides secrets in text by their structure, not by
// searching for their characters: the password (or token) in a URL's
// userinfo, the values of credential-like query parameters (also inside a
// query value that is itself a URL, such as endpoint=http://u:pw@h), and
// the API key where it stands as a whole token. A one-letter key therefore
// does not turn every "k" of a message into the mask.
package redact

import (
	"encoding/json"
	"net/url"
	"strings"

	"github.com/backfillhq/backfill/internal/location"
)

// Mask replaces every secret.
const Mask = "[REDACTED]"

// credentialWords are the query parameter name parts that mark a secret
// (case-insensitive): access keys, SAS signatures (sig), session tokens,
// passwords, X-Amz-Credential/-Signature/-Security-Token, api_key...
var credentialWords = []string{"key", "secret", "token", "password", "passwd", "pwd", "sig", "credential", "auth", "session"}

// secretParam reports whether a query parameter named name holds a secret.
func secretParam(name string) bool {
	n := strings.ToLower(name)
	for _, w := range credentialWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// URL returns the URL s with its userinfo secret and credential query
// values replaced by Mask, recursively into query values that are URLs.
// Everything else is kept as written. A string that is not a URL is
// returned unchanged.
func URL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return s
	}
	http := strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https")
	before, query := location.SplitQuery(rest, http)
	auth, path, hasPath := strings.Cut(before, "/")
	if i := strings.LastIndexByte(auth, '@'); i >= 0 {
		user, _, hasPW := strings.Cut(auth[:i], ":")
		if hasPW {
			auth = user + ":" + Mask + auth[i:]
		} else {
			auth = Mask + auth[i:] // a lone userinfo is usually a token
		}
	}
	var b strings.Builder
	b.WriteString(scheme + "://" + auth)
	if hasPath {
		b.WriteString("/" + path)
	}
	if before != rest {
		b.WriteString("?" + redactQuery(query))
	}
	return b.String()
}

// redactQuery masks credential values of a raw query, and redacts values
// that are URLs (raw or percent-encoded).
func redactQuery(q string) string {
	parts := strings.Split(q, "&")
	for i, p := range parts {
		name, val, hasVal := strings.Cut(p, "=")
		if !hasVal {
			continue
		}
		if dn, err := url.QueryUnescape(name); err == nil {
			name = dn
		}
		switch {
		case secretParam(name):
			val = Mask
		case strings.Contains(val, "://"):
			val = URL(val)
		case strings.Contains(strings.ToLower(val), "%3a%2f%2f"):
			if dv, err := url.QueryUnescape(val); err == nil {
				if r := URL(dv); r != dv {
					val = url.QueryEscape(r)
				}
			}
		}
		parts[i] = p[:strings.IndexByte(p, '=')+1] + val
	}
	return strings.Join(parts, "&")
}

// Text returns s with every URL in it passed through URL, and key (raw,
// JSON-escaped or percent-encoded) replaced by Mask wherever it is a whole
// token: not preceded or followed by a letter, digit or '_'. An empty key
// masks no token.
func Text(s, key string) string {
	if s == "" {
		return s
	}
	if strings.Contains(s, "://") {
		s = urls(s)
	}
	if key == "" {
		return s
	}
	forms := []string{key}
	if b, err := json.Marshal(key); err == nil && string(b[1:len(b)-1]) != key {
		forms = append(forms, string(b[1:len(b)-1]))
	}
	if q := url.QueryEscape(key); q != key {
		forms = append(forms, q)
	}
	for _, f := range forms {
		s = tokens(s, f)
	}
	return s
}

// urls redacts every scheme://... run in s; a URL ends at white space, a
// quote or an angle bracket.
func urls(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; i+3 <= len(s); {
		j := strings.Index(s[i:], "://")
		if j < 0 {
			break
		}
		j += i
		start := j
		for start > last && schemeChar(s[start-1]) {
			start--
		}
		end := j + 3
		for end < len(s) && !urlEnd(s[end]) {
			end++
		}
		if start == j { // no scheme: not a URL
			i = j + 3
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(URL(s[start:end]))
		last, i = end, end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func schemeChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}

func urlEnd(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '"', '\'', '`', '<', '>':
		return true
	}
	return false
}

func wordChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c >= 0x80
}

// tokens replaces each occurrence of tok in s that is a whole token.
func tokens(s, tok string) string {
	var b strings.Builder
	last := 0
	for i := 0; i <= len(s)-len(tok); {
		j := strings.Index(s[i:], tok)
		if j < 0 {
			break
		}
		j += i
		end := j + len(tok)
		whole := (j == 0 || !wordChar(s[j-1]) || !wordChar(tok[0])) &&
			(end == len(s) || !wordChar(s[end]) || !wordChar(tok[len(tok)-1]))
		if !whole {
			i = j + 1
			continue
		}
		b.WriteString(s[last:j])
		b.WriteString(Mask)
		last, i = end, end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}
