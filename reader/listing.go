package reader

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"

	"gocloud.dev/blob"
)

// Listing iterates over the objects of several sources: sources in the order
// given, objects of one source in lexicographic key order. It holds one
// listing page (or, locally, one directory per level) at a time.
type Listing struct {
	r       *Reader
	sources []string
	i       int    // index of the current source
	cur     lister // nil before the current source is opened
	src     source // the current source
	n       int    // objects produced by the current source
	err     error  // sticky
}

// lister yields the objects of one source.
type lister interface {
	next(ctx context.Context) (Object, error)
}

// List returns a Listing over sources. Each source is a local path (a file
// or a directory), a file:// URL, or a bucket URL (s3://, gs://, azblob://
// or any scheme Options.OpenBucket understands) whose path is a key prefix,
// optionally with glob metacharacters.
func (r *Reader) List(ctx context.Context, sources []string) *Listing {
	return &Listing{r: r, sources: slices.Clone(sources)}
}

// Next returns the next object, or io.EOF after the last. A source that
// cannot be listed, or that matches nothing (ErrNoObjects), ends the listing
// with an error naming it; further calls return the same error.
func (l *Listing) Next(ctx context.Context) (Object, error) {
	for l.err == nil {
		if err := ctx.Err(); err != nil {
			return Object{}, err
		}
		if l.cur == nil {
			if l.i == len(l.sources) {
				return Object{}, io.EOF
			}
			if err := l.open(ctx); err != nil {
				l.err = err
				break
			}
		}
		obj, err := l.cur.next(ctx)
		switch {
		case err == nil:
			l.n++
			if l.r.opts.Format != "" {
				obj.Format = l.r.opts.Format
			}
			return obj, nil
		case err == io.EOF:
			if l.n == 0 {
				l.err = fmt.Errorf("list %s: %w", l.src.display, ErrNoObjects)
				break
			}
			l.cur, l.n = nil, 0
			l.i++
		case ctx.Err() != nil:
			return Object{}, ctx.Err()
		default:
			if l.err = bucketError(l.src, err); l.err == nil {
				l.err = fmt.Errorf("list %s: %w", l.src.display, err)
			}
		}
	}
	return Object{}, l.err
}

func (l *Listing) open(ctx context.Context) error {
	src, err := parseSource(l.sources[l.i])
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	l.src = src
	if src.local {
		l.cur = &localLister{src: src}
		return nil
	}
	b, err := l.r.bucket(ctx, src.bucket)
	if err != nil {
		if berr := bucketError(src, err); berr != nil {
			return berr
		}
		return fmt.Errorf("list %s: %w", src.display, err)
	}
	l.cur = &bucketLister{src: src, it: b.List(&blob.ListOptions{Prefix: src.prefix})}
	return nil
}

// bucketLister lists a bucket page by page.
type bucketLister struct {
	src  source
	it   *blob.ListIterator
	prev string
}

func (b *bucketLister) next(ctx context.Context) (Object, error) {
	for {
		lo, err := b.it.Next(ctx)
		if err != nil {
			return Object{}, err
		}
		if b.prev != "" && lo.Key <= b.prev {
			return Object{}, fmt.Errorf("%w: %q after %q", ErrUnsorted, lo.Key, b.prev)
		}
		b.prev = lo.Key
		if lo.IsDir || strings.HasSuffix(lo.Key, "/") || hidden(lo.Key, b.src.prefix) {
			continue
		}
		if b.src.glob != nil && !b.src.glob.match(lo.Key) {
			continue
		}
		md5 := ""
		if len(lo.MD5) > 0 {
			md5 = hex.EncodeToString(lo.MD5)
		}
		f, c := Detect(lo.Key)
		return Object{
			URL: b.src.base + lo.Key, Key: lo.Key, Size: lo.Size, MD5: md5, ModTime: lo.ModTime,
			Fingerprint: fingerprint(lo.Size, md5, lo.ModTime), Format: f, Compression: c,
			bucket: b.src.bucket,
		}, nil
	}
}

// localLister walks a directory tree in lexicographic order of the full
// slash path (a directory "a" sorts as "a/", after "a.txt"), reading one
// directory per level at a time. Symbolic links to files are followed and
// links to directories are not; those links and the entries that are not
// regular files (named pipes, sockets, devices, dangling links, link loops)
// are listed with Object.NotRead set, so that they are reported instead of
// skipped. A link to a directory is listed where the directory's entries
// would be, if the source could hold any of them.
type localLister struct {
	src     source
	started bool
	stack   []*dirFrame
}

type dirFrame struct {
	dir  string // slash path with a trailing slash
	ents []dirEnt
	i    int
}

type dirEnt struct {
	name    string
	dir     bool
	info    fs.FileInfo // files only
	notRead string      // why a non-directory entry cannot be read
	dirLink bool        // a symbolic link to a directory: filtered as a directory, listed as not read
}

func (l *localLister) next(ctx context.Context) (Object, error) {
	if !l.started {
		l.started = true
		if l.src.single != "" {
			fi, err := os.Stat(l.src.single)
			if err != nil {
				return Object{}, err
			}
			obj := localObject(l.src.single, fi)
			obj.NotRead = notRegular(fi.Mode())
			return obj, nil
		}
		root := l.src.prefix[:strings.LastIndexByte(l.src.prefix, '/')+1]
		if err := l.push(root); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return Object{}, io.EOF
			}
			return Object{}, err
		}
	}
	for len(l.stack) > 0 {
		if err := ctx.Err(); err != nil {
			return Object{}, err
		}
		top := l.stack[len(l.stack)-1]
		if top.i == len(top.ents) {
			l.stack = l.stack[:len(l.stack)-1]
			continue
		}
		e := top.ents[top.i]
		top.i++
		full := top.dir + e.name
		if hidden(full, l.src.prefix) {
			continue
		}
		if e.dirLink {
			// Listed where the directory would have been walked.
			d := full + "/"
			if !strings.HasPrefix(d, l.src.prefix) && !strings.HasPrefix(l.src.prefix, d) ||
				l.src.glob != nil && !l.src.glob.mayContain(full) {
				continue
			}
			return Object{URL: "file://" + full, Key: full, NotRead: e.notRead}, nil
		}
		if e.dir {
			d := full + "/"
			if !strings.HasPrefix(d, l.src.prefix) && !strings.HasPrefix(l.src.prefix, d) {
				continue
			}
			if l.src.glob != nil && !l.src.glob.mayContain(full) {
				continue
			}
			if err := l.push(d); err != nil {
				return Object{}, err
			}
			continue
		}
		if !strings.HasPrefix(full, l.src.prefix) || (l.src.glob != nil && !l.src.glob.match(full)) {
			continue
		}
		if e.notRead != "" {
			f, c := Detect(full)
			return Object{URL: "file://" + full, Key: full, Format: f, Compression: c, NotRead: e.notRead}, nil
		}
		return localObject(full, e.info), nil
	}
	return Object{}, io.EOF
}

// notRegular describes a file mode that is not a regular file, or returns
// "" for a regular file.
func notRegular(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return ""
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO), not a regular file"
	case m&fs.ModeSocket != 0:
		return "a socket, not a regular file"
	case m&fs.ModeDevice != 0, m&fs.ModeCharDevice != 0:
		return "a device, not a regular file"
	case m.IsDir():
		return "a directory"
	}
	return "not a regular file (" + m.Type().String() + ")"
}

// linkError describes why the target of a symbolic link cannot be read.
func linkError(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "a dangling symbolic link (its target does not exist)"
	case errors.Is(err, syscall.ELOOP):
		return "a symbolic link loop"
	case errors.Is(err, fs.ErrPermission):
		return "a symbolic link whose target is not accessible (permission denied)"
	}
	return "a symbolic link that cannot be followed: " + err.Error()
}

func (l *localLister) push(dir string) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	ents := make([]dirEnt, 0, len(des))
	for _, de := range des {
		e := dirEnt{name: de.Name(), dir: de.IsDir()}
		switch {
		case de.Type()&fs.ModeSymlink != 0:
			fi, err := os.Stat(dir + e.name)
			switch {
			case err != nil:
				e.notRead = linkError(err)
			case fi.IsDir():
				// Not followed (no loops), but listed, so that it is
				// reported rather than skipped.
				e.dirLink, e.notRead = true, "a symbolic link to a directory (links to directories are not followed)"
			default:
				e.info, e.notRead = fi, notRegular(fi.Mode())
			}
		case !e.dir:
			fi, err := de.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // removed since ReadDir
				}
				return err
			}
			e.info, e.notRead = fi, notRegular(fi.Mode())
		}
		ents = append(ents, e)
	}
	slices.SortFunc(ents, func(a, b dirEnt) int { return strings.Compare(a.sortKey(), b.sortKey()) })
	l.stack = append(l.stack, &dirFrame{dir: dir, ents: ents})
	return nil
}

func (e dirEnt) sortKey() string {
	if e.dir || e.dirLink {
		return e.name + "/"
	}
	return e.name
}

func localObject(path string, fi fs.FileInfo) Object {
	f, c := Detect(path)
	return Object{
		URL: "file://" + path, Key: path, Size: fi.Size(), ModTime: fi.ModTime(),
		Fingerprint: fingerprint(fi.Size(), "", fi.ModTime()), Format: f, Compression: c,
	}
}
