package pipeline

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/hotids"
	"github.com/backfillhq/backfill/uploader"
)

// ObjectStat summarises one object of this run.
type ObjectStat struct {
	URL      string
	Route    backfill.Route
	Skipped  bool   // already complete in the checkpoint
	Changed  bool   // fingerprint differs from the checkpointed one; progress restarted
	Err      string // object-level error
	Records  int64  // records read this run (skipped settled records excluded)
	Started  time.Time
	Finished time.Time
}

// Stats are live counters of this run (not of the whole job: the tracker's
// Counters are cumulative). Read them with Snapshot.
type Stats struct {
	ObjectsListed  atomic.Int64
	ObjectsDone    atomic.Int64
	ObjectsFailed  atomic.Int64
	ObjectsSkipped atomic.Int64
	Read           atomic.Int64 // records read this run
	Accepted       atomic.Int64
	Rejected       atomic.Int64
	Skipped        atomic.Int64 // excluded at the source: settled, neither sent nor dead-lettered
	// DuplicateInsertIDs counts events sharing their id and insert_id with
	// an earlier, different event: Amplitude keeps only the first.
	DuplicateInsertIDs atomic.Int64
	RequestsBatch      atomic.Int64
	RequestsHTTPAPI    atomic.Int64
	Responses429       atomic.Int64
	Responses5xx       atomic.Int64
	Retries            atomic.Int64
	Splits             atomic.Int64
	BytesSent          atomic.Int64
	Parked             atomic.Int64 // events currently parked
	Throttled          atomic.Int64 // ids paused after a 429, cumulative
	// Foreign counts the records read and left to the other shards of a
	// sharded run (they are not in Read).
	Foreign   atomic.Int64
	RouteHTTP atomic.Bool // the tail phase on /2/httpapi has started

	// Hottest is the device or user id with the most events sent (or
	// queued) in this run, set when Run returns; it decides the lower bound
	// on the run's duration.
	Hottest hotids.IDCount

	parkMu sync.Mutex
	parked map[string]checkpoint.ParkedID // by kind + ":" + id

	bytesDone atomic.Int64 // stored bytes of the objects finished
	cur       atomic.Pointer[byteCounter]
}

// ParkedIDs returns the ids parked for Amplitude's daily quota whose
// parking has not ended at now, sorted. The checkpoint records them for
// `backfill status`; a later run simply tries them again (one request each
// at most before they are parked anew if the quota still holds).
func (s *Stats) ParkedIDs(now time.Time) []checkpoint.ParkedID {
	s.parkMu.Lock()
	defer s.parkMu.Unlock()
	out := make([]checkpoint.ParkedID, 0, len(s.parked))
	for _, p := range s.parked {
		if p.Until.After(now) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (s *Stats) park(p checkpoint.ParkedID) {
	s.parkMu.Lock()
	defer s.parkMu.Unlock()
	if s.parked == nil {
		s.parked = map[string]checkpoint.ParkedID{}
	}
	s.parked[p.Kind+":"+p.ID] = p
}

// byteCounter is implemented by decoders that report the stored bytes they
// consumed (reader.Decoder does).
type byteCounter interface{ BytesRead() int64 }

// BytesRead returns the stored bytes read so far: finished objects plus the
// progress of the object being read.
func (s *Stats) BytesRead() int64 {
	n := s.bytesDone.Load()
	if c := s.cur.Load(); c != nil {
		n += (*c).BytesRead()
	}
	return n
}

// count adds one Send's request statistics to the job's checkpointed
// counters and the run's Stats: the delta is worked out once and written to
// both.
func (r *run) count(route backfill.Route, st uploader.Stats) {
	var n5xx int
	for code, n := range st.Responses {
		if code >= 500 || code == 0 {
			n5xx += n
		}
	}
	d := checkpoint.Counters{Responses429: int64(st.Status429), Responses5xx: int64(n5xx), Retries: int64(st.Retries), BytesSent: st.BytesSent}
	if route == backfill.RouteHTTP {
		d.RequestsHTTPAPI = int64(st.Requests)
	} else {
		d.RequestsBatch = int64(st.Requests)
	}
	r.deps.Tracker.AddCounters(d)
	r.stats.add(d)
	r.stats.Splits.Add(int64(st.Splits)) // this run only: not checkpointed
}

// add adds the request counters of d (a checkpoint delta) to s.
func (s *Stats) add(d checkpoint.Counters) {
	s.RequestsBatch.Add(d.RequestsBatch)
	s.RequestsHTTPAPI.Add(d.RequestsHTTPAPI)
	s.Responses429.Add(d.Responses429)
	s.Responses5xx.Add(d.Responses5xx)
	s.Retries.Add(d.Retries)
	s.BytesSent.Add(d.BytesSent)
}
