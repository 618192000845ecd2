package checkpoint

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ErrMismatch means a checkpoint was written for a different job (other
// sources or options that change the events sent).
var ErrMismatch = errors.New("checkpoint belongs to a different job")

// Fingerprint returns a short, stable hex digest (16 hex digits of SHA-256)
// of parts. Parts are length-prefixed, so ("ab", "c") and ("a", "bc")
// differ. Never pass secrets such as the API key: the fingerprint is stored
// in plain text.
func Fingerprint(parts ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Change is one difference between two job descriptions.
type Change struct {
	Key      string
	Old, New string
	// Added and Removed mark a key present on one side only.
	Added, Removed bool
}

func (c Change) String() string {
	switch {
	case c.Added:
		return fmt.Sprintf("%s added: %s", c.Key, c.New)
	case c.Removed:
		return fmt.Sprintf("%s removed (was %s)", c.Key, c.Old)
	default:
		return fmt.Sprintf("%s changed: %s → %s", c.Key, c.Old, c.New)
	}
}

// MismatchError lists what differs between the job a checkpoint was written
// for and the current one. It matches ErrMismatch with errors.Is.
type MismatchError struct {
	Saved, Current string // job fingerprints
	Changes        []Change
}

func (e *MismatchError) Error() string {
	var b strings.Builder
	b.WriteString("checkpoint belongs to a different job: ")
	if len(e.Changes) == 0 {
		fmt.Fprintf(&b, "job fingerprint changed: %s → %s", e.Saved, e.Current)
	}
	for i, c := range e.Changes {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(c.String())
	}
	b.WriteString("; use --force to resume anyway")
	return b.String()
}

// Is makes errors.Is(err, ErrMismatch) true.
func (e *MismatchError) Is(target error) bool { return target == ErrMismatch }

// Diff returns the changes from saved to current, sorted by key.
func Diff(saved, current map[string]string) []Change {
	keys := slices.Sorted(maps.Keys(saved))
	for k := range current {
		if _, ok := saved[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []Change
	for _, k := range keys {
		o, inOld := saved[k]
		n, inNew := current[k]
		switch {
		case !inOld:
			out = append(out, Change{Key: k, New: n, Added: true})
		case !inNew:
			out = append(out, Change{Key: k, Old: o, Removed: true})
		case o != n:
			out = append(out, Change{Key: k, Old: o, New: n})
		}
	}
	return out
}

// CheckJob returns nil if saved was written for the job with fingerprint
// job, and otherwise a *MismatchError describing the differences between
// saved.JobDesc and desc, e.g. "--eps changed: 300 → 500; use --force to
// resume anyway".
func CheckJob(saved *State, job string, desc map[string]string) error {
	if saved.Job == job {
		return nil
	}
	return &MismatchError{Saved: saved.Job, Current: job, Changes: Diff(saved.JobDesc, desc)}
}
