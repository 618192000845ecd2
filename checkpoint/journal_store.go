package checkpoint

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
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
// Each run writes its generations under a random run id of its own, so a
// run that lost a bucket lock and still writes cannot clash with the run
// that took it over: a generation is the parts of one (gen, run).
type journalPart struct {
	gen  int64
	run  string
	part int64
	key  string
}

// sameGen reports whether a and b belong to one generation.
func (a journalPart) sameGen(b journalPart) bool { return a.gen == b.gen && a.run == b.run }

// newRunID returns the random id of a run's journal parts.
func newRunID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// parseGenRun parses "<gen>-<run>".
func parseGenRun(s string) (int64, string, bool) {
	g, run, ok := strings.Cut(s, "-")
	gen, err := strconv.ParseInt(g, 10, 64)
	return gen, run, ok && err == nil && run != "" && !strings.Contains(run, "-")
}

// journalBackend stores journal generations.
type journalBackend interface {
	parts(ctx context.Context) ([]journalPart, error) // sorted by gen, part
	read(ctx context.Context, p journalPart) ([]byte, error)
	// write makes frame durable as part part of generation gen of run:
	// appended to the generation's file, or as an object of its own.
	write(ctx context.Context, gen int64, run string, part int64, frame []byte) error
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
	slices.SortFunc(ps, func(a, b journalPart) int {
		return cmp.Or(cmp.Compare(a.gen, b.gen), strings.Compare(a.run, b.run), cmp.Compare(a.part, b.part))
	})
}

// localJournal keeps one append-only file per generation; each write is
// appended and fsynced (group commit: one fsync for every entry queued
// since the last).
type localJournal struct {
	dir string
	f   *os.File // the generation being appended to
	gen int64
}

func (l *localJournal) file(gen int64, run string) string {
	return filepath.Join(l.dir, fmt.Sprintf("%s%016d-%s.log", journalPrefix, gen, run))
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
		gen, run, ok2 := parseGenRun(name)
		if !ok || !ok2 {
			continue
		}
		out = append(out, journalPart{gen: gen, run: run, key: filepath.Join(l.dir, e.Name())})
	}
	sortParts(out)
	return out, nil
}

func (l *localJournal) read(_ context.Context, p journalPart) ([]byte, error) {
	return os.ReadFile(p.key)
}

func (l *localJournal) write(_ context.Context, gen int64, run string, _ int64, frame []byte) error {
	if l.f == nil || l.gen != gen {
		if l.f != nil {
			l.f.Close()
			l.f = nil
		}
		if err := os.MkdirAll(l.dir, 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(l.file(gen, run), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
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
// be appended to): journal-<gen>-<run>-<part>.
type bucketJournal struct {
	b      *blob.Bucket
	prefix string
}

func (k *bucketJournal) key(gen int64, run string, part int64) string {
	return fmt.Sprintf("%s%016d-%s-%08d", k.prefix, gen, run, part)
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
		name := strings.TrimPrefix(o.Key, k.prefix)
		i := strings.LastIndexByte(name, '-')
		if i < 0 || o.IsDir {
			continue
		}
		gen, run, ok := parseGenRun(name[:i])
		part, err := strconv.ParseInt(name[i+1:], 10, 64)
		if !ok || err != nil {
			continue
		}
		out = append(out, journalPart{gen: gen, run: run, part: part, key: o.Key})
	}
	sortParts(out)
	return out, nil
}

func (k *bucketJournal) read(ctx context.Context, p journalPart) ([]byte, error) {
	data, err := k.b.ReadAll(ctx, p.key)
	return data, translate(err)
}

func (k *bucketJournal) write(ctx context.Context, gen int64, run string, part int64, frame []byte) error {
	return k.b.WriteAll(ctx, k.key(gen, run, part), frame, &blob.WriterOptions{ContentType: "application/octet-stream"})
}

func (k *bucketJournal) remove(ctx context.Context, p journalPart) error {
	if err := translate(k.b.Delete(ctx, p.key)); err != nil && !isNotExist(err) {
		return err
	}
	return nil
}

func (k *bucketJournal) close() error { return nil }
