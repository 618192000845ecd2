package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/backfillhq/backfill"
)

// CurrentVersion is the State format written by this build. Load refuses
// states with a higher version (written by a newer backfill) with ErrVersion.
const CurrentVersion = 1

var (
	// ErrVersion means the checkpoint was written by a newer backfill whose
	// format this build does not understand.
	ErrVersion = errors.New("unsupported checkpoint version")
	// ErrCorrupt means a checkpoint file exists but cannot be parsed.
	ErrCorrupt = errors.New("corrupt checkpoint")
)

// State is everything a run persists to resume exactly where it stopped.
// Field names are part of the on-disk format: they are stable and
// snake_case; new fields must be optional.
type State struct {
	// Version is the format version, CurrentVersion when written by Save.
	Version int `json:"version"`
	// Job is the fingerprint of the sources and of every option that changes
	// the events sent (see Fingerprint). A resume with another fingerprint is
	// refused unless forced (see CheckJob).
	Job string `json:"job_fingerprint"`
	// JobDesc describes the fingerprinted configuration for humans, so a
	// mismatch can say what changed. It must never hold secrets.
	JobDesc map[string]string `json:"job,omitempty"`
	// Shard is this run's shard, "2/3", or empty when unsharded.
	Shard string `json:"shard,omitempty"`
	// Split is how a sharded job divides its events: SplitDevice. Sharded
	// states without it were written by the object split of earlier
	// versions and cannot be resumed (see job.Run).
	Split string `json:"split,omitempty"`
	// Plan is the generation of the job's route plan this state's run
	// follows (see job.RoutePlan); 0 for states written before plans were
	// recorded.
	Plan int `json:"plan,omitempty"`
	// Objects is the progress of each source object, by object URL.
	Objects map[string]*Object `json:"objects"`
	// Counters are the cumulative job counters, consistent with Objects
	// when taken with Tracker.Fill.
	Counters Counters `json:"counters"`
	// DeadLetterSize is the length of the dead-letter file that matches this
	// state; a resume truncates the file back to it (see deadletter.Open).
	DeadLetterSize int64 `json:"dead_letter_size"`
	// DeadLetterFile is where the job writes rejected records, for
	// `backfill report` and `status`.
	DeadLetterFile string `json:"dead_letter_file,omitempty"`
	// Started is when the first run of this job started.
	Started time.Time `json:"started"`
	// Updated is when this state was taken.
	Updated time.Time `json:"updated"`
	// Complete is set when every object is done.
	Complete bool `json:"complete"`
	// RunCount counts the runs (first run and resumes) of this job.
	RunCount int `json:"run_count"`
	// Parked lists ids parked because they exceeded a daily quota, with the
	// time they may be retried.
	Parked []ParkedID `json:"parked,omitempty"`
	// JournalGen is the first acknowledgement-journal generation not
	// compacted into this state: a resume applies generations >= it (see
	// Journal).
	JournalGen int64 `json:"journal_gen,omitempty"`
	// Recent holds the recent sends of the ids the pacing budgets track
	// exactly, so a resumed run stays within the window the state's run had
	// started (see IDSends).
	Recent []IDSends `json:"recent,omitempty"`

	// FellBack is set by Load (never saved) when the newest state was
	// missing or unreadable and this is the previous one; NewestErr is why.
	// The caller says how much will be sent again (see Store.Load).
	FellBack  bool  `json:"-"`
	NewestErr error `json:"-"`
}

// SplitDevice is State.Split of a job sharded by device: every shard reads
// every object and sends the events whose key it owns (backfill.ShardOf).
const SplitDevice = "device"

// ParkedID is a device or user id whose events are held back until Until
// because Amplitude reported its daily quota exceeded.
type ParkedID struct {
	Kind  string    `json:"kind"` // "device" or "user"
	ID    string    `json:"id"`
	Until time.Time `json:"until"`
}

// Object is the progress of one source object.
//
// Every record with index < Watermark is settled (accepted by the server,
// dead-lettered or filtered out); Settled lists the settled half-open ranges
// above it. A resumed reader restarts at the Resume* position, which is at or
// below Watermark, and drops the records that Tracker.Read or Tracker.Skip
// report as settled.
type Object struct {
	// Fingerprint identifies the object's content (size, ETag, mtime...) as
	// computed by the caller; progress is discarded if it changes.
	Fingerprint string `json:"fingerprint"`
	// Watermark is the lowest record index that is not settled.
	Watermark int64 `json:"watermark"`
	// ResumeRecord is where a reader may restart: a record index <=
	// Watermark whose start position is known. 0 means "from the start".
	ResumeRecord int64 `json:"resume_record"`
	// ResumeOffset is the byte offset (in the decompressed stream) of record
	// ResumeRecord, or -1 when unknown (Parquet, or nothing read yet).
	ResumeOffset int64 `json:"resume_offset"`
	// ResumeLine is the 1-based line of record ResumeRecord for text
	// formats, 0 otherwise.
	ResumeLine int64 `json:"resume_line,omitempty"`
	// ResumeRowGroup and ResumeRow locate record ResumeRecord in Parquet.
	ResumeRowGroup int   `json:"resume_row_group,omitempty"`
	ResumeRow      int64 `json:"resume_row,omitempty"`
	// Settled holds the settled half-open ranges [a,b) above Watermark,
	// sorted, disjoint and not adjacent. Its length is bounded by the number
	// of records in flight when the state was taken.
	Settled [][2]int64 `json:"settled,omitempty"`
	// Done is set when the whole object was read and every record settled.
	Done bool `json:"done"`
	// Total is the number of records in the object, once EOF was reached;
	// -1 while unknown.
	Total int64 `json:"total"`
	// Read counts the settled records of this object (Accepted + Rejected
	// + Filtered). Records in flight are not counted, so the counters stay
	// exact across resumes.
	Read     int64 `json:"read"`
	Accepted int64 `json:"accepted"`
	Rejected int64 `json:"rejected"`
	Filtered int64 `json:"filtered,omitempty"`
	// Foreign counts the settled records that belong to other shards of
	// the job (read here, sent by their owner); they are not in Read.
	Foreign int64 `json:"other_shards,omitempty"`
	// Error is the object-level error of the last attempt, if it failed.
	Error string `json:"error,omitempty"`
}

// ResumePosition returns the position a reader of object should restart at.
// Record 0 means the reader starts from the beginning.
func (o *Object) ResumePosition(object string) backfill.Position {
	return backfill.Position{
		Object:   object,
		Record:   o.ResumeRecord,
		Offset:   o.ResumeOffset,
		Line:     o.ResumeLine,
		RowGroup: o.ResumeRowGroup,
		Row:      o.ResumeRow,
	}
}

// Skip reports whether record is already settled according to o.
func (o *Object) Skip(record int64) bool {
	if o.Done || record < o.Watermark {
		return true
	}
	return inRanges(o.Settled, record)
}

func (o *Object) clone() *Object {
	c := *o
	c.Settled = slices.Clone(o.Settled)
	return &c
}

// Counters are the cumulative counters of a job. The Events* fields are
// maintained by Tracker.SettleWith and SettleEvents; the others are added with
// Tracker.AddCounters. Request, retry and byte counters count work done, so
// work redone after a crash is counted again; event counters count settled
// records and are exact.
type Counters struct {
	EventsRead     int64 `json:"events_read"`
	EventsAccepted int64 `json:"events_accepted"`
	EventsRejected int64 `json:"events_rejected"`
	EventsFiltered int64 `json:"events_filtered"`
	// EventsForeign counts records read and left to the other shards of a
	// sharded job; they are not in EventsRead.
	EventsForeign   int64 `json:"events_other_shards,omitempty"`
	RequestsBatch   int64 `json:"requests_batch"`
	RequestsHTTPAPI int64 `json:"requests_httpapi"`
	Responses429    int64 `json:"responses_429"`
	Responses5xx    int64 `json:"responses_5xx"`
	Retries         int64 `json:"retries"`
	BytesRead       int64 `json:"bytes_read"`
	BytesSent       int64 `json:"bytes_sent"`
	// EventsResent counts records sent again after a crash because their
	// acknowledgement had not been made durable (see Journal).
	EventsResent int64 `json:"events_resent,omitempty"`
	// Extra holds counters without a dedicated field, by snake_case name.
	Extra map[string]int64 `json:"extra,omitempty"`
}

// Add adds every counter of d to c.
func (c *Counters) Add(d Counters) {
	c.EventsRead += d.EventsRead
	c.EventsAccepted += d.EventsAccepted
	c.EventsRejected += d.EventsRejected
	c.EventsFiltered += d.EventsFiltered
	c.EventsForeign += d.EventsForeign
	c.RequestsBatch += d.RequestsBatch
	c.RequestsHTTPAPI += d.RequestsHTTPAPI
	c.Responses429 += d.Responses429
	c.Responses5xx += d.Responses5xx
	c.Retries += d.Retries
	c.BytesRead += d.BytesRead
	c.BytesSent += d.BytesSent
	c.EventsResent += d.EventsResent
	for k, v := range d.Extra {
		if c.Extra == nil {
			c.Extra = make(map[string]int64)
		}
		c.Extra[k] += v
	}
}

func (c Counters) clone() Counters {
	c.Extra = maps.Clone(c.Extra)
	return c
}

// Marshal encodes st in the current format (Version is set to
// CurrentVersion in the output; st is not modified).
func Marshal(st *State) ([]byte, error) {
	c := *st
	c.Version = CurrentVersion
	if c.Objects == nil {
		c.Objects = map[string]*Object{}
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	return append(b, '\n'), nil
}

// Unmarshal decodes a state. It returns an error wrapping ErrVersion for a
// state written by a newer format, and ErrCorrupt for anything unparsable.
func Unmarshal(data []byte) (*State, error) {
	var v struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	switch {
	case v.Version == nil || *v.Version < 1:
		return nil, fmt.Errorf("%w: missing or invalid version", ErrCorrupt)
	case *v.Version > CurrentVersion:
		return nil, fmt.Errorf("%w: version %d is newer than %d, the newest this backfill understands; upgrade backfill",
			ErrVersion, *v.Version, CurrentVersion)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if st.Objects == nil {
		st.Objects = map[string]*Object{}
	}
	for url, o := range st.Objects {
		if o == nil {
			return nil, fmt.Errorf("%w: object %s is null", ErrCorrupt, url)
		}
		if err := o.validate(); err != nil {
			return nil, fmt.Errorf("%w: object %s: %v", ErrCorrupt, url, err)
		}
	}
	return &st, nil
}

func (o *Object) validate() error {
	if o.Watermark < 0 || o.ResumeRecord < 0 || o.ResumeRecord > o.Watermark {
		return fmt.Errorf("watermark %d, resume record %d", o.Watermark, o.ResumeRecord)
	}
	prev := o.Watermark
	for _, r := range o.Settled {
		if r[0] <= prev || r[1] <= r[0] {
			return fmt.Errorf("settled ranges not sorted and merged above watermark %d: %v", o.Watermark, o.Settled)
		}
		prev = r[1]
	}
	return nil
}

// inRanges reports whether x lies in one of the sorted half-open ranges.
func inRanges(rs [][2]int64, x int64) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i][1] > x })
	return i < len(rs) && rs[i][0] <= x
}
