package checkpoint

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gocloud.dev/blob"
)

// journalPrefix starts the name of every journal file or object, next to
// the state (under the store's name).
const journalPrefix = "journal-"

// journalPart is one stored piece of a journal generation: the whole file
// of a local generation (part 0), or one frame object of a bucket one.
type journalPart struct {
	gen, part int64
	key       string
}

// journalBackend stores journal generations.
type journalBackend interface {
	parts(ctx context.Context) ([]journalPart, error) // sorted by gen, part
	read(ctx context.Context, p journalPart) ([]byte, error)
	// write makes frame durable as part part of generation gen: appended
	// to the generation's file, or as an object of its own.
	write(ctx context.Context, gen, part int64, frame []byte) error
	remove(ctx context.Context, p journalPart) error
	close() error
}

// journalBackend returns the journal storage next to the state of name.
func (s *Store) journalBackend(name string) journalBackend {
	switch be := s.be.(type) {
	case *localBackend:
		return &localJournal{dir: be.path(name)}
	case *bucketBackend:
		prefix := journalPrefix
		if name != "" {
			prefix = name + "/" + journalPrefix
		}
		return &bucketJournal{b: be.b, prefix: prefix}
	}
	return nil
}

func sortParts(ps []journalPart) {
	slices.SortFunc(ps, func(a, b journalPart) int { return cmp.Or(cmp.Compare(a.gen, b.gen), cmp.Compare(a.part, b.part)) })
}

// localJournal keeps one append-only file per generation; each write is
// appended and fsynced (group commit: one fsync for every entry queued
// since the last).
type localJournal struct {
	dir string
	f   *os.File // the generation being appended to
	gen int64
}

func (l *localJournal) file(gen int64) string {
	return filepath.Join(l.dir, fmt.Sprintf("%s%016d.log", journalPrefix, gen))
}

func (l *localJournal) parts(context.Context) ([]journalPart, error) {
	ents, err := os.ReadDir(l.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []journalPart
	for _, e := range ents {
		name, ok := strings.CutPrefix(e.Name(), journalPrefix)
		if !ok || e.IsDir() {
			continue
		}
		name, ok = strings.CutSuffix(name, ".log")
		gen, err := strconv.ParseInt(name, 10, 64)
		if !ok || err != nil {
			continue
		}
		out = append(out, journalPart{gen: gen, key: filepath.Join(l.dir, e.Name())})
	}
	sortParts(out)
	return out, nil
}

func (l *localJournal) read(_ context.Context, p journalPart) ([]byte, error) {
	return os.ReadFile(p.key)
}

func (l *localJournal) write(_ context.Context, gen, _ int64, frame []byte) error {
	if l.f == nil || l.gen != gen {
		if l.f != nil {
			l.f.Close()
			l.f = nil
		}
		if err := os.MkdirAll(l.dir, 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(l.file(gen), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		// The new file's name must survive a crash too.
		if err := syncDir(l.dir); err != nil {
			f.Close()
			return err
		}
		l.f, l.gen = f, gen
	}
	if _, err := l.f.Write(frame); err != nil {
		return err
	}
	return l.f.Sync()
}

// remove deletes a generation below the one being written (so it does not
// touch l.f, which belongs to the writer).
func (l *localJournal) remove(_ context.Context, p journalPart) error {
	err := os.Remove(p.key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (l *localJournal) close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// bucketJournal keeps each frame as an object of its own (objects cannot
// be appended to): journal-<gen>-<part>.
type bucketJournal struct {
	b      *blob.Bucket
	prefix string
}

func (k *bucketJournal) key(gen, part int64) string {
	return fmt.Sprintf("%s%016d-%08d", k.prefix, gen, part)
}

func (k *bucketJournal) parts(ctx context.Context) ([]journalPart, error) {
	var out []journalPart
	it := k.b.List(&blob.ListOptions{Prefix: k.prefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		g, p, ok := strings.Cut(strings.TrimPrefix(o.Key, k.prefix), "-")
		gen, err1 := strconv.ParseInt(g, 10, 64)
		part, err2 := strconv.ParseInt(p, 10, 64)
		if !ok || err1 != nil || err2 != nil || o.IsDir {
			continue
		}
		out = append(out, journalPart{gen: gen, part: part, key: o.Key})
	}
	sortParts(out)
	return out, nil
}

func (k *bucketJournal) read(ctx context.Context, p journalPart) ([]byte, error) {
	data, err := k.b.ReadAll(ctx, p.key)
	return data, translate(err)
}

func (k *bucketJournal) write(ctx context.Context, gen, part int64, frame []byte) error {
	return k.b.WriteAll(ctx, k.key(gen, part), frame, &blob.WriterOptions{ContentType: "application/octet-stream"})
}

func (k *bucketJournal) remove(ctx context.Context, p journalPart) error {
	if err := translate(k.b.Delete(ctx, p.key)); err != nil && !isNotExist(err) {
		return err
	}
	return nil
}

func (k *bucketJournal) close() error { return nil }
