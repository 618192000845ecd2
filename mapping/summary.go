package mapping

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/internal/escape"
	"github.com/backfillhq/backfill/validate"
)

// Defaults for Summary.
const (
	DefaultSummarySamples  = 10     // bad records kept
	DefaultSummaryExamples = 3      // mapped events kept
	DefaultDistinctCap     = 100000 // ids counted exactly before estimating
	sampleRawLimit         = 512    // bytes of a bad record kept
)

// Summary collects what "backfill validate" reports: counts per outcome and
// reason, sample bad records, the time range, distinct users and devices
// (exact up to DistinctCap ids each, then a HyperLogLog estimate with about
// 1% error in 16 KiB), and the first mapped events. The zero value is ready
// to use with the defaults; it is safe for concurrent use.
type Summary struct {
	MaxSamples  int // default DefaultSummarySamples
	MaxExamples int // default DefaultSummaryExamples
	DistinctCap int // default DefaultDistinctCap

	mu       sync.Mutex
	total    int64
	mapped   int64
	filtered int64
	skipped  int64
	rejected int64
	reasons  map[string]int64
	samples  []Sample
	examples [][]byte
	minTime  int64
	maxTime  int64
	users    distinct
	devices  distinct

	// shortRejected and blockedRejected count rejections for want of an id
	// because the ids there were too short or blocked.
	shortRejected, blockedRejected int64
}

// Sample is one bad record kept by a Summary.
type Sample struct {
	Pos    backfill.Position
	Code   string // Error.Code, or "error" for other errors
	Reason string
	Raw    []byte // at most 512 bytes of the record
}

// Add records the outcome of one Map call.
func (s *Summary) Add(ev backfill.Event, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	if s.reasons == nil {
		s.reasons = map[string]int64{}
	}
	if err != nil {
		code, smp := "error", Sample{Reason: err.Error()}
		var me *Error
		var re *backfill.RecordError
		if errors.As(err, &me) {
			code = me.Code
		}
		if errors.As(err, &re) {
			if me == nil {
				code = CodeDecode // the reader's: a line or row it could not decode
			}
			smp.Pos, smp.Reason, smp.Raw = re.Pos, re.Reason, re.Raw
			if len(smp.Raw) > sampleRawLimit {
				smp.Raw = smp.Raw[:sampleRawLimit]
			}
			smp.Raw = append([]byte(nil), smp.Raw...)
		}
		smp.Code = code
		s.reasons[code]++
		if errors.Is(err, ErrFiltered) {
			s.filtered++
			return
		}
		if errors.Is(err, ErrSkipped) {
			s.skipped++
			return
		}
		s.rejected++
		switch {
		case code == validate.CodeIDTooShort:
			s.shortRejected++
		case code == validate.CodeMissingID && strings.Contains(smp.Reason, " is blocked"):
			s.blockedRejected++
		}
		if len(s.samples) < orDefault(s.MaxSamples, DefaultSummarySamples) {
			s.samples = append(s.samples, smp)
		}
		return
	}
	s.mapped++
	if ev.Time != 0 {
		if s.mapped == 1 || s.minTime == 0 || ev.Time < s.minTime {
			s.minTime = ev.Time
		}
		if ev.Time > s.maxTime {
			s.maxTime = ev.Time
		}
	}
	limit := orDefault(s.DistinctCap, DefaultDistinctCap)
	if ev.UserID != "" {
		s.users.add(ev.UserID, limit)
	}
	if ev.DeviceID != "" {
		s.devices.add(ev.DeviceID, limit)
	}
	if len(s.examples) < orDefault(s.MaxExamples, DefaultSummaryExamples) {
		s.examples = append(s.examples, append([]byte(nil), ev.Raw...))
	}
}

func orDefault(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

// IDRejections returns how many records were rejected for want of a usable
// id because their ids were too short, or on Amplitude's blocked list.
func (s *Summary) IDRejections() (short, blocked int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shortRejected, s.blockedRejected
}

// Counts returns the records seen, mapped, filtered and rejected.
func (s *Summary) Counts() (total, mapped, filtered, rejected int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total, s.mapped, s.filtered, s.rejected
}

// WriteText writes a human-readable report.
func (s *Summary) WriteText(w io.Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ew := &errWriter{w: w}
	ew.printf("records:   %d\n", s.total)
	ew.printf("valid:     %d\n", s.mapped)
	ew.printf("filtered:  %d\n", s.filtered)
	if s.skipped > 0 {
		ew.printf("skipped:   %d (excluded at the source; --include-excluded sends them)\n", s.skipped)
	}
	ew.printf("rejected:  %d\n", s.rejected)
	codes := make([]string, 0, len(s.reasons))
	for c := range s.reasons {
		codes = append(codes, c)
	}
	sort.Slice(codes, func(i, j int) bool {
		if s.reasons[codes[i]] != s.reasons[codes[j]] {
			return s.reasons[codes[i]] > s.reasons[codes[j]]
		}
		return codes[i] < codes[j]
	})
	for _, c := range codes {
		ew.printf("  %-22s %d\n", escape.Line(c), s.reasons[c])
	}
	if s.mapped > 0 && s.maxTime != 0 {
		ew.printf("time range: %s .. %s\n", fmtMS(s.minTime), fmtMS(s.maxTime))
	}
	for _, d := range []struct {
		name string
		c    *distinct
	}{{"users", &s.users}, {"devices", &s.devices}} {
		n, exact := d.c.count()
		approx := ""
		if !exact {
			approx = "~"
		}
		ew.printf("distinct %-8s %s%d\n", d.name+":", approx, n)
	}
	if len(s.samples) > 0 {
		ew.printf("sample rejected records:\n")
		for _, smp := range s.samples {
			where := smp.Pos.String()
			if smp.Pos.Object == "" {
				where = "?"
			}
			ew.printf("  %s: [%s] %s\n", escape.Line(where), smp.Code, escape.Line(smp.Reason))
			if len(smp.Raw) > 0 {
				ew.printf("    %s\n", escape.Line(string(smp.Raw)))
			}
		}
	}
	if len(s.examples) > 0 {
		ew.printf("first mapped events:\n")
		for _, e := range s.examples {
			ew.printf("  %s\n", escape.Line(string(e)))
		}
	}
	return ew.err
}

func fmtMS(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

// distinct counts distinct strings: exactly up to a cap, then with a
// HyperLogLog sketch (precision 14: 16384 one-byte registers).
type distinct struct {
	exact map[string]struct{}
	hll   []uint8
}

const hllP = 14

func (d *distinct) add(s string, limit int) {
	if d.hll == nil {
		if d.exact == nil {
			d.exact = map[string]struct{}{}
		}
		d.exact[s] = struct{}{}
		if len(d.exact) <= limit {
			return
		}
		d.hll = make([]uint8, 1<<hllP)
		for k := range d.exact {
			d.hllAdd(k)
		}
		d.exact = nil
		return
	}
	d.hllAdd(s)
}

func (d *distinct) hllAdd(s string) {
	h := hash64(s)
	idx := h >> (64 - hllP)
	w := h<<hllP | 1<<(hllP-1)
	rho := uint8(bits.LeadingZeros64(w) + 1)
	if rho > d.hll[idx] {
		d.hll[idx] = rho
	}
}

func (d *distinct) count() (int64, bool) {
	if d.hll == nil {
		return int64(len(d.exact)), true
	}
	m := float64(len(d.hll))
	sum, zeros := 0.0, 0
	for _, r := range d.hll {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	est := 0.7213 / (1 + 1.079/m) * m * m / sum
	if est <= 2.5*m && zeros > 0 {
		est = m * math.Log(m/float64(zeros))
	}
	return int64(est + 0.5), false
}

// hash64 is FNV-1a followed by the splitmix64 finalizer, deterministic
// across runs.
func hash64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
