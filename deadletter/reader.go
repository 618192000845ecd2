package deadletter

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// MaxLine is the longest line Reader accepts.
const MaxLine = 64 << 20

// Reader parses a dead-letter file line by line.
type Reader struct {
	sc   *bufio.Scanner
	line int64
}

// NewReader returns a Reader over r.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	return &Reader{sc: sc}
}

// Next returns the next entry, or io.EOF at the end. A line that is not a
// dead-letter entry gives an error wrapping ErrCorrupt; reading may go on.
// Empty lines are skipped.
func (r *Reader) Next() (Entry, error) {
	for r.sc.Scan() {
		r.line++
		b := r.sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(b, &e); err != nil {
			return Entry{}, fmt.Errorf("%w: line %d: %v", ErrCorrupt, r.line, err)
		}
		if e.Version != FormatVersion {
			return Entry{}, fmt.Errorf("%w: line %d: not a dead-letter entry (backfill_dead_letter=%d)", ErrCorrupt, r.line, e.Version)
		}
		return e, nil
	}
	if err := r.sc.Err(); err != nil {
		return Entry{}, fmt.Errorf("read dead-letter line %d: %w", r.line+1, err)
	}
	return Entry{}, io.EOF
}

// ReadAll reads every entry of the file at path. On a corrupt line it
// returns the entries read so far and the error.
func ReadAll(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read dead-letter file: %w", err)
	}
	defer f.Close()
	var out []Entry
	r := NewReader(f)
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("read dead-letter file %s: %w", path, err)
		}
		out = append(out, e)
	}
}

// ReasonCount is how many entries share a stage and reason.
type ReasonCount struct {
	Stage  Stage  `json:"stage"`
	Reason string `json:"reason"`
	Count  int    `json:"count"`
}

// Summary counts dead-letter entries for reports. The zero value is ready
// to use.
type Summary struct {
	Total   int           `json:"total"`
	ByStage map[Stage]int `json:"by_stage"`
	reasons map[ReasonCount]int
}

// Add counts one entry.
func (s *Summary) Add(e Entry) {
	if s.ByStage == nil {
		s.ByStage = make(map[Stage]int)
		s.reasons = make(map[ReasonCount]int)
	}
	s.Total++
	s.ByStage[e.Stage]++
	s.reasons[ReasonCount{Stage: e.Stage, Reason: e.Reason}]++
}

// Top returns the n most frequent (stage, reason) pairs, most frequent
// first, ties by stage then reason; n <= 0 returns all.
func (s *Summary) Top(n int) []ReasonCount {
	out := make([]ReasonCount, 0, len(s.reasons))
	for k, c := range s.reasons {
		k.Count = c
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b ReasonCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Stage, b.Stage), cmp.Compare(a.Reason, b.Reason))
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// Summarize counts entries.
func Summarize(entries []Entry) *Summary {
	s := &Summary{}
	for _, e := range entries {
		s.Add(e)
	}
	return s
}

// SummarizeFile counts the entries of the file at path without holding
// them in memory. Corrupt lines are counted in corrupt and skipped.
func SummarizeFile(path string) (s *Summary, corrupt int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("read dead-letter file: %w", err)
	}
	defer f.Close()
	s = &Summary{}
	r := NewReader(f)
	for {
		e, err := r.Next()
		switch {
		case errors.Is(err, io.EOF):
			return s, corrupt, nil
		case errors.Is(err, ErrCorrupt):
			corrupt++
		case err != nil:
			return s, corrupt, fmt.Errorf("read dead-letter file %s: %w", path, err)
		default:
			s.Add(e)
		}
	}
}
