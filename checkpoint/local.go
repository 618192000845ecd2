package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// localBackend stores states as files under dir, written atomically.
type localBackend struct {
	dir string
}

func (l *localBackend) path(key string) string {
	return filepath.Join(l.dir, filepath.FromSlash(key))
}

func (l *localBackend) read(_ context.Context, key string) ([]byte, error) {
	return os.ReadFile(l.path(key))
}

const tempPattern = StateFile + ".tmp-*"

func (l *localBackend) save(_ context.Context, name string, data []byte) (err error) {
	dir := l.path(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, tempPattern)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	cur := filepath.Join(dir, StateFile)
	// Keep the state being replaced as the previous one. A crash between the
	// two renames leaves only PrevFile, which Load falls back to.
	if err := os.Rename(cur, filepath.Join(dir, PrevFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, cur); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes renames in dir durable. Directories cannot be fsynced on
// Windows; there rename is as durable as it gets.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return d.Close()
}

func (l *localBackend) keys(context.Context) ([]string, error) {
	var out []string
	err := filepath.WalkDir(l.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == l.dir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		rel, err := filepath.Rel(l.dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if strings.Count(rel, "/") >= 1 { // states live at depth 0 or 1
				return fs.SkipDir
			}
			return nil
		}
		out = append(out, rel)
		return nil
	})
	return out, err
}

// removeTemps deletes temp files left by Saves that crashed. Only called
// with the lock held, so no Save of another process is in progress.
func (l *localBackend) removeTemps(name string) {
	matches, _ := filepath.Glob(filepath.Join(l.path(name), tempPattern))
	for _, m := range matches {
		os.Remove(m)
	}
}

func (l *localBackend) close() error { return nil }
