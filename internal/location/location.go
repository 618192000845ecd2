// Package location is the one parser of the locations a user types: a
// source (a local path, file:// or a bucket URL with a key prefix or glob),
// a checkpoint location (a directory or a bucket URL) and an endpoint
// (http(s)://host[/base]). reader, checkpoint, uploader and job all read
// locations through Parse, so a URL means the same thing whichever flag it
// is given to.
//
// # Query parameters
//
// A bucket URL's query (gocloud.dev's region, endpoint, use_path_style, ...)
// starts at the first '?' that is followed by name=value: that is how the
// README writes them, unencoded, e.g.
//
//	s3://bucket/prefix/?endpoint=http://127.0.0.1:9000&use_path_style=true
//
// A '?' that is not followed by name= (a glob such as part-?.csv) stays in
// the key. Values may be percent-encoded or not.
package location

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrSyntax reports a location that cannot be parsed.
var ErrSyntax = errors.New("invalid location")

// Location is one parsed location.
type Location struct {
	// Scheme is "" for a local path, else the URL scheme in lower case
	// ("file", "s3", "gs", "azblob", "mem", "http", "https", ...).
	Scheme string
	// User is the userinfo of an authority (http://user:pw@host), or nil.
	User *url.Userinfo
	// Host is the bucket or container name (s3://HOST/...), or host:port of
	// an http(s) endpoint. Empty for local paths and file:// URLs.
	Host string
	// Path is the local path, or the key prefix or glob of a bucket URL
	// (no leading '/'), or the path of an http(s) URL (leading '/'). It is
	// kept literally: bucket keys are not percent-decoded.
	Path string
	// RawQuery is the query without '?', as written; Query is it parsed.
	RawQuery string
	Query    url.Values
}

// Local reports whether l is a local path or a file:// URL.
func (l Location) Local() bool { return l.Scheme == "" || l.Scheme == "file" }

// Parse parses s. It does not touch the file system or the network.
func Parse(s string) (Location, error) {
	if s == "" {
		return Location{}, fmt.Errorf("%w: empty", ErrSyntax)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !validScheme(scheme) {
		return Location{Path: s}, nil // a local path (it may hold ':' or '?')
	}
	l := Location{Scheme: strings.ToLower(scheme)}
	rest, l.RawQuery = splitQuery(rest, l.Scheme == "http" || l.Scheme == "https")
	if l.RawQuery != "" {
		q, err := url.ParseQuery(l.RawQuery)
		if err != nil {
			return Location{}, fmt.Errorf("%w: %s: query: %v", ErrSyntax, l.Scheme+"://"+rest, err)
		}
		l.Query = q
	}
	if l.Scheme == "file" {
		host, p, _ := strings.Cut(rest, "/")
		if host != "" && host != "localhost" {
			return Location{}, fmt.Errorf("%w: file://%s: want file:///absolute/path", ErrSyntax, rest)
		}
		l.Path = "/" + p
		return l, nil
	}
	auth, p, hasPath := strings.Cut(rest, "/")
	if i := strings.LastIndexByte(auth, '@'); i >= 0 {
		u, err := parseUserinfo(auth[:i])
		if err != nil {
			return Location{}, fmt.Errorf("%w: %s: userinfo: %v", ErrSyntax, rawDisplay(s), err)
		}
		l.User, auth = u, auth[i+1:]
	}
	l.Host = auth
	if l.Host == "" {
		return Location{}, fmt.Errorf("%w: %s: missing host or bucket name", ErrSyntax, rawDisplay(s))
	}
	switch {
	case l.Scheme == "http" || l.Scheme == "https":
		if hasPath {
			l.Path = "/" + p
		}
		if _, err := url.Parse(l.Scheme + "://" + l.Host + l.Path); err != nil {
			return Location{}, fmt.Errorf("%w: %s: %v", ErrSyntax, rawDisplay(s), errors.Unwrap(err))
		}
	default:
		l.Path = p
	}
	return l, nil
}

// validScheme reports whether s is a URL scheme (RFC 3986: a letter, then
// letters, digits, '+', '-', '.'), so that "C:\x" or "./a://b" stay paths.
func validScheme(s string) bool {
	if len(s) < 2 { // "C://" on Windows is a drive, not a scheme
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// SplitQuery splits the part of a URL after "scheme://" into what comes
// before its query and the query, by the rule Parse uses. http is true for
// http(s) URLs, whose query starts at the first '?'.
func SplitQuery(rest string, http bool) (before, query string) { return splitQuery(rest, http) }

// splitQuery splits "bucket/key?a=b&c" at the first '?' followed by a
// parameter name and '=' (any '?' for http(s), where a '?' cannot be a
// glob), so that a glob's '?' (part-?.csv) stays in the key while the query
// may hold URLs with '/', ':' and '?' (endpoint=http://h:9000/x).
func splitQuery(s string, anyQ bool) (rest, query string) {
	for i := 0; i < len(s); i++ {
		if s[i] != '?' {
			continue
		}
		if anyQ || paramStart(s[i+1:]) {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// paramStart reports whether q starts with name= where name is a query
// parameter name (letters, digits, '_', '-', '.').
func paramStart(q string) bool {
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-', c == '.':
		case c == '=':
			return i > 0
		default:
			return false
		}
	}
	return false
}

func parseUserinfo(s string) (*url.Userinfo, error) {
	name, pw, hasPW := strings.Cut(s, ":")
	name, err := url.PathUnescape(name)
	if err != nil {
		return nil, err
	}
	if !hasPW {
		return url.User(name), nil
	}
	pw, err = url.PathUnescape(pw)
	if err != nil {
		return nil, err
	}
	return url.UserPassword(name, pw), nil
}

// Bucket returns the URL that opens l's bucket with gocloud.dev's
// blob.OpenBucket: scheme://host?query, the query re-encoded so that
// unencoded values (endpoint=http://h:9000) reach the driver intact.
func (l Location) Bucket() string {
	s := l.Scheme + "://" + l.Host
	if len(l.Query) > 0 {
		s += "?" + l.Query.Encode()
	}
	return s
}

// WithoutQuery returns l as written, minus userinfo and query: the form
// used in messages, object URLs, insert_id derivation and fingerprints.
func (l Location) WithoutQuery() string {
	switch {
	case l.Scheme == "":
		return l.Path
	case l.Scheme == "file":
		return "file://" + l.Path
	case l.Scheme == "http" || l.Scheme == "https":
		return l.Scheme + "://" + l.Host + l.Path
	}
	return l.Scheme + "://" + l.Host + "/" + l.Path
}

// URL returns l as a net/url URL (userinfo and query included), for
// http(s) endpoints.
func (l Location) URL() *url.URL {
	return &url.URL{Scheme: l.Scheme, User: l.User, Host: l.Host, Path: l.Path, RawQuery: l.RawQuery}
}

// Display returns s without its query and userinfo, for messages, without
// failing on a location Parse refuses.
func Display(s string) string {
	if l, err := Parse(s); err == nil {
		return l.WithoutQuery()
	}
	return rawDisplay(s)
}

// rawDisplay strips query and userinfo from s without parsing it.
func rawDisplay(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	rest, _ = splitQuery(rest, false)
	auth, p, has := strings.Cut(rest, "/")
	if i := strings.LastIndexByte(auth, '@'); i >= 0 {
		auth = auth[i+1:]
	}
	if has {
		auth += "/" + p
	}
	return scheme + "://" + auth
}
