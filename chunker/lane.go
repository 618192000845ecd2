package chunker

import (
	"sync"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/amplitude"
)

// Defaults for Options.
const (
	DefaultMaxEvents      = amplitude.MaxEvents // Amplitude's per-request event limit (both APIs)
	DefaultMaxBytes       = 19 << 20            // under Batch's 20,000,000-byte limit, with margin
	DefaultOverhead       = 512                 // body bytes outside the events: api_key, options
	DefaultLinger         = 200 * time.Millisecond
	DefaultMaxQueued      = 2500    // events held in memory per lane: a request and a quarter (more only adds GC work)
	DefaultMaxQueuedBytes = 4 << 20 // bytes held in memory per lane
)

// Options configures a Lane. Zero fields take the Default* values.
type Options struct {
	// MaxEvents caps events per request.
	MaxEvents int
	// MaxBytes caps a request body, Overhead included.
	MaxBytes int
	// Overhead is the size of a body without events: {"api_key":..,"events":[]}.
	Overhead int
	// Linger is how long a request that is not full waits for more events,
	// and the minimum gap between two requests that are not full, so that a
	// lane whose other devices are paced does not send a request per event.
	Linger time.Duration
	// MaxQueued and MaxQueuedBytes bound what the lane holds in memory.
	// Above them, Push moves the backlog of the lane's biggest device queue
	// to a spill file (a hot device waiting for budget must not block the
	// cold ones behind it); when no queue is big enough to spill, Push
	// reports false and the caller waits on Space.
	MaxQueued      int
	MaxQueuedBytes int
	// SpillDir is where spill files go; default os.TempDir(). Files are
	// unlinked at creation, so nothing is left behind.
	SpillDir string
	// NoSpill turns spilling off: a full lane always reports false.
	NoSpill bool
	// Daily, when set, is a second budget every event also spends (a
	// per-id daily quota, see NewDailyBudget), shared by all lanes.
	Daily *Budget
	// MaxPerID, when > 0, caps the events of one device_id and of one
	// user_id in one request, whatever the budget allows. /2/httpapi
	// refuses a request holding more of one id than its throttle window
	// takes (30 events/s × 30 s), however long the client waits, so such
	// a request must never be built.
	MaxPerID int
}

func (o *Options) defaults() {
	if o.MaxEvents <= 0 || o.MaxEvents > DefaultMaxEvents {
		o.MaxEvents = DefaultMaxEvents
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Overhead <= 0 {
		o.Overhead = DefaultOverhead
	}
	if o.Linger <= 0 {
		o.Linger = DefaultLinger
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = DefaultMaxQueued
	}
	if o.MaxQueuedBytes <= 0 {
		o.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
}

// Lane holds the queued events of the devices hashed to it and packs them
// into requests. Events of one device (or, without a device, of one user)
// leave the lane in the order they were pushed. A lane is meant to have at
// most one request in flight; that is the pipeline's job.
//
// Lane is safe for concurrent use: one goroutine pushes, another packs.
type Lane struct {
	opts   Options
	budget *Budget
	daily  *Budget // optional second budget (a daily quota), may be nil

	mu          sync.Mutex
	queues      map[uint64]*queue // by key hash (see lookup), colliding queues chained
	active      []*queue
	free        []*queue         // emptied queues kept for reuse (most devices have few events)
	spare       []backfill.Event // a recycled Batch.Events, reused by Next
	rr          int
	queued      int // events in memory
	queuedBytes int
	spilled     int // events in spill files
	spillErr    error
	oldest      time.Time
	nextSend    time.Time
	closed      bool
	fl          flight // the request of the last Next, until Done

	ready chan struct{}
	space chan struct{}
}

type queue struct {
	// The queue's key (see Key): its device_id, or its user_id when dev
	// is empty.
	dev, user string
	h         uint64 // hashID of the key's id: dev, or user when dev is empty
	next      *queue // next queue whose map key is the same (a hash collision)
	evs       []item
	head      int
	idx       int    // position in Lane.active
	sp        *spill // overflow on disk, after evs; nil when none
	blocked   bool   // the front event waits for budget (paced or paused)
}

func (q *queue) len() int { return len(q.evs) - q.head }

// item is a queued event and the hash of its user_id (0 when it has none),
// computed at Push while the id's bytes are in the cache: Next spends the
// budgets by hash without touching the ids' bytes, which by then have
// usually left the cache.
type item struct {
	ev backfill.Event
	uh uint64
}

// queueKeyMask masks the key hashes of the queue map; tests clear bits of
// it to force collisions.
var queueKeyMask = ^uint64(0)

// keyHashes returns the hashes of ev's device and user ids (0 for an
// absent id) and of its key.
func keyHashes(ev *backfill.Event) (dh, uh, kh uint64) {
	if ev.DeviceID != "" {
		dh = hashID(ev.DeviceID)
	}
	if ev.UserID != "" {
		uh = hashID(ev.UserID)
	}
	if ev.DeviceID != "" {
		return dh, uh, dh
	}
	return dh, uh, uh
}

// lookup returns the queue of ev's key, whose hash is kh, or nil. The map is
// keyed by the hash that the budgets need anyway, so it neither hashes the
// key string again nor, when a queue empties, rereads it to delete it.
// Called with l.mu held.
func (l *Lane) lookup(kh uint64, ev *backfill.Event) *queue {
	for q := l.queues[kh&queueKeyMask]; q != nil; q = q.next {
		if q.dev == ev.DeviceID && (q.dev != "" || q.user == ev.UserID) {
			return q
		}
	}
	return nil
}

// NewLane returns an empty lane that spends budget from b (shared by all
// lanes so that a user spread over several lanes is paced as one).
func NewLane(b *Budget, opts Options) *Lane {
	opts.defaults()
	return &Lane{
		opts:   opts,
		budget: b,
		daily:  opts.Daily,
		queues: make(map[uint64]*queue),
		ready:  make(chan struct{}, 1),
		space:  make(chan struct{}, 1),
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Ready is signalled when events were pushed or the lane was closed.
func (l *Lane) Ready() <-chan struct{} { return l.ready }

// Space is signalled when events left the lane, so a full lane may accept
// more.
func (l *Lane) Space() <-chan struct{} { return l.space }

// Push queues ev at the back of its device queue. When the lane's memory is
// full it spills the backlog of its biggest device queue to disk; it returns
// false, queuing nothing, only when nothing can be spilled. An empty lane
// always accepts.
func (l *Lane) Push(ev backfill.Event, now time.Time) bool {
	_, uh, kh := keyHashes(&ev)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.spillErr != nil {
		return false
	}
	q := l.lookup(kh, &ev) // makeRoom neither adds nor removes queues
	if l.queued > 0 && (l.queued >= l.opts.MaxQueued || l.queuedBytes >= l.opts.MaxQueuedBytes) {
		if (q == nil || q.sp == nil) && !l.makeRoom() {
			return false
		}
	}
	if q != nil && q.sp != nil {
		// The device is spilling: its newer events follow the file.
		if err := q.sp.push(&ev); err != nil {
			l.spillErr = err
			return false
		}
		l.spilled++
	} else {
		l.addTo(q, kh, item{ev, uh}, now, false)
	}
	signal(l.ready)
	return true
}

func (l *Lane) add(ev backfill.Event, now time.Time, front bool) {
	_, uh, kh := keyHashes(&ev)
	l.addTo(l.lookup(kh, &ev), kh, item{ev, uh}, now, front)
}

// addTo is add with the hash kh of it's key and its queue q (nil when it
// has none).
func (l *Lane) addTo(q *queue, kh uint64, it item, now time.Time, front bool) {
	if q == nil {
		if n := len(l.free); n > 0 {
			q = l.free[n-1]
			l.free = l.free[:n-1]
		} else {
			q = &queue{}
		}
		q.dev, q.h, q.idx = it.ev.DeviceID, kh, len(l.active)
		if q.dev == "" {
			q.user = it.ev.UserID
		}
		mk := kh & queueKeyMask
		if head := l.queues[mk]; head == nil {
			l.queues[mk] = q
		} else {
			// A hash collision: chain the new queue behind the head.
			q.next, head.next = head.next, q
		}
		l.active = append(l.active, q)
	}
	if front {
		if q.head > 0 {
			q.head--
			q.evs[q.head] = it
		} else {
			q.evs = append([]item{it}, q.evs...)
		}
	} else {
		q.evs = append(q.evs, it)
	}
	if l.queued == 0 {
		l.oldest = now
	}
	l.queued++
	l.queuedBytes += len(it.ev.Raw)
}

// Requeue puts events that must be sent again (throttled by a 429) back at
// the front of their device queues, ahead of anything pushed since, in their
// original order. It ignores the lane's bounds.
func (l *Lane) Requeue(evs []backfill.Event, now time.Time) {
	if len(evs) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(evs) - 1; i >= 0; i-- {
		l.add(evs[i], now, true)
	}
	signal(l.ready)
}

// Close tells the lane no more events will be pushed: what is queued is sent
// without lingering.
func (l *Lane) Close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	signal(l.ready)
}

// Len returns the number of queued events, in memory and spilled.
func (l *Lane) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queued + l.spilled
}

// Release closes the lane's spill files; the events they hold are dropped
// (they are unsettled, so a later run reads them again). Call it when the
// lane will not be used any more.
func (l *Lane) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, q := range l.active { // a queue with a spill file is active
		if q.sp != nil {
			q.sp.close()
			q.sp = nil
		}
	}
	l.spilled = 0
}

// Err returns the first spill error: a spill file could not be written or
// read back. The lane then refuses pushes and the pipeline must stop; the
// events it could not keep are unsettled, so the checkpoint still holds
// them and a later run reads them again.
func (l *Lane) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.spillErr
}

func (l *Lane) remove(q *queue) {
	last := len(l.active) - 1
	moved := l.active[last]
	l.active[q.idx] = moved
	moved.idx = q.idx
	l.active = l.active[:last]
	mk := q.h & queueKeyMask
	if head := l.queues[mk]; head == q {
		if q.next == nil {
			delete(l.queues, mk)
		} else {
			l.queues[mk] = q.next
		}
	} else {
		for p := head; p != nil; p = p.next {
			if p.next == q {
				p.next = q.next
				break
			}
		}
	}
	q.next = nil
	// Keep small emptied queues (their slots were zeroed as they were
	// sent) to spare the next devices an allocation each.
	if len(l.free) < maxFreeQueues && cap(q.evs) <= maxFreeQueueCap {
		q.evs, q.head, q.dev, q.user, q.blocked = q.evs[:0], 0, "", "", false
		l.free = append(l.free, q)
	}
}

const (
	maxFreeQueues   = 1024
	maxFreeQueueCap = 64
	// minSpill is the least backlog worth a spill file write.
	minSpill = 16
)
