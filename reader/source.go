package reader

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/backfillhq/backfill/internal/location"
)

// source is one parsed source string.
type source struct {
	display string // the source without query parameters, for errors
	local   bool
	bucket  string // remote: bucket URL with query parameters
	base    string // remote: "scheme://bucket/"; canonical URL = base + key
	// prefix is the literal part before the first glob metacharacter: the
	// listing prefix (a key prefix, or an absolute slash path locally).
	prefix string
	glob   *glob  // nil when the source has no glob
	single string // local: the one file the source names, if it is a file
}

const globMeta = `*?[\`

// parseSource parses a source string: a local path (file or directory), a
// file:// URL, or a bucket URL such as s3://bucket/prefix?region=x.
func parseSource(s string) (source, error) {
	if s == "" {
		return source{}, fmt.Errorf("%w: empty source", ErrBadSource)
	}
	l, err := location.Parse(s)
	if err != nil {
		return source{}, fmt.Errorf("%w: %v", ErrBadSource, err)
	}
	display := l.WithoutQuery()
	switch {
	case l.Scheme == "":
		return localSource(s, s)
	case l.Scheme == "file":
		if l.RawQuery != "" {
			return source{}, fmt.Errorf("%w: %s: file sources take no query parameters", ErrBadSource, display)
		}
		return localSource(l.Path, display)
	case l.User != nil:
		return source{}, fmt.Errorf("%w: %s: a bucket URL takes no user or password (credentials come from the environment)", ErrBadSource, display)
	case strings.ContainsAny(l.Host, globMeta):
		return source{}, fmt.Errorf("%w: %s: missing or invalid bucket name", ErrBadSource, display)
	}
	key := l.Path
	src := source{display: display, bucket: l.Bucket(), base: l.Scheme + "://" + l.Host + "/", prefix: key}
	if i := strings.IndexAny(key, globMeta); i >= 0 {
		g, err := compileGlob(key)
		if err != nil {
			return source{}, fmt.Errorf("%w: %s: %v", ErrBadSource, display, err)
		}
		src.prefix, src.glob = key[:i], g
	}
	return src, nil
}

// localSource resolves a local path, which may hold a glob.
func localSource(p, display string) (source, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return source{}, fmt.Errorf("%w: %s: %v", ErrBadSource, display, err)
	}
	abs = filepath.ToSlash(abs)
	src := source{display: display, local: true}
	if i := strings.IndexAny(abs, globMeta); i >= 0 {
		g, err := compileGlob(abs)
		if err != nil {
			return source{}, fmt.Errorf("%w: %s: %v", ErrBadSource, display, err)
		}
		src.prefix, src.glob = abs[:i], g
		return src, nil
	}
	fi, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return source{}, fmt.Errorf("%s: %w", display, ErrNotFound)
		}
		return source{}, fmt.Errorf("%s: %w", display, err)
	}
	if !fi.IsDir() {
		src.prefix, src.single = abs, abs
		return src, nil
	}
	src.prefix = strings.TrimSuffix(abs, "/") + "/"
	return src, nil
}

// hidden reports whether key has a path segment, beyond what the source
// spelled out literally (prefix), whose name starts with '.' or '_'
// (.git, _SUCCESS, _temporary/...).
func hidden(key, prefix string) bool {
	for i := 0; i < len(key); i++ {
		if (i == 0 || key[i-1] == '/') && i >= len(prefix) && (key[i] == '.' || key[i] == '_') {
			return true
		}
	}
	return false
}

// glob matches slash-separated names. Each segment follows path.Match
// (*, ?, [...], \ escapes; none of them match '/'), and a segment that is
// exactly "**" matches any number of segments, including none.
type glob struct{ segs []string }

func compileGlob(p string) (*glob, error) {
	g := &glob{segs: strings.Split(p, "/")}
	for _, s := range g.segs {
		if _, err := path.Match(s, ""); err != nil {
			return nil, fmt.Errorf("glob %q: %w", p, err)
		}
	}
	return g, nil
}

// match reports whether name matches the whole pattern.
func (g *glob) match(name string) bool {
	return matchSegs(g.segs, strings.Split(name, "/"))
}

// mayContain reports whether some name below directory dir (no trailing
// slash) could match, so the walk can prune the rest.
func (g *glob) mayContain(dir string) bool {
	return prefixSegs(g.segs, strings.Split(dir, "/"))
}

func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchSegs(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

func prefixSegs(pat, dir []string) bool {
	for len(dir) > 0 {
		if len(pat) == 0 {
			return false
		}
		if pat[0] == "**" {
			return true
		}
		if ok, _ := path.Match(pat[0], dir[0]); !ok {
			return false
		}
		pat, dir = pat[1:], dir[1:]
	}
	return len(pat) > 0
}
