package pipeline

import (
	"context"
	"log/slog"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/amplitude"
	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/deadletter"
	"github.com/backfillhq/backfill/uploader"
)

// Defaults for Config.
const (
	DefaultLanes           = 16
	DefaultMapWorkers      = 2
	DefaultCheckpointEvery = 5 * time.Second
	DefaultParkFor         = amplitude.QuotaPark // Amplitude's daily-quota window rolls hourly
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultHTTPEPS paces each id on /2/httpapi: 80% of its 30 events/s
	// limit, the safety margin for the tail route.
	DefaultHTTPEPS = amplitude.DefaultHTTPEPS
	mapBatch       = 256
	// hotExact and hotSample: see dispatch.
	hotExact  = 1 << 16
	hotSample = 8
	// finalSaveTimeout bounds the checkpoint save at the end of a run.
	finalSaveTimeout = 30 * time.Second
)

var (
	// ErrInterrupted is returned when the soft context ended the run before
	// every object was read: the checkpoint holds where to resume. It is
	// backfill.ErrInterrupted (outcome backfill.Interrupted).
	ErrInterrupted = backfill.ErrInterrupted
	// ErrParked is returned when the run ended with events held back for
	// ids over Amplitude's daily quota; a later run sends them. Its outcome
	// is backfill.Incomplete.
	ErrParked = backfill.OutcomeError(backfill.Incomplete, "events parked for ids over the daily quota")
)

// Object is one source object to read.
type Object struct {
	// URL is the canonical object URL, the key of its checkpoint progress.
	URL string
	// Fingerprint identifies the object's content (size, ETag, mtime).
	Fingerprint string
	// Size is the stored size in bytes, for progress.
	Size int64
	// Route is the endpoint its events go to. Objects routed to
	// backfill.RouteHTTP must come after every RouteBatch object: they are
	// sent once all Batch traffic has settled, so a device's newer events
	// never overtake its older ones.
	Route backfill.Route
	// Open returns a decoder producing records from start (a resume point;
	// the zero Position with Offset 0 means the beginning). It is also how
	// the records of events the server refused are read again, from the
	// first such position, for their dead-letter entries.
	Open func(ctx context.Context, start backfill.Position) (Decoder, error)
	// Check, if set, returns an error when the object is no longer the
	// version that was listed (see reader.Reader.Check). Records read again
	// for refused events are used only when Check passes before and after;
	// nil trusts the object not to change.
	Check func(ctx context.Context) error
}

// Decoder yields the records of one object (see reader.Decoder).
type Decoder interface {
	Next(ctx context.Context) (backfill.Record, error)
	Close() error
}

// Lister yields objects in processing order and io.EOF at the end.
type Lister interface {
	Next(ctx context.Context) (Object, error)
}

// Mapper turns a source record into a validated event (see mapping.Mapper).
// Errors are *backfill.RecordError and the record is dead-lettered, under
// the stage a StagedError names (validate for other record errors). The
// pipeline gives each record to Map once and never reads its Data again, so
// the event's Raw may be the record's buffer (mapping.Options.OwnRecords);
// it must not be shared with anything else, because the pipeline recycles
// it once the event is accepted (backfill.ReleaseRecordData).
type Mapper interface {
	Map(rec backfill.Record) (backfill.Event, error)
}

// Sender delivers events (see uploader.Client). Send must not keep any
// event's Raw once it returns: the pipeline recycles the buffers of the
// accepted ones (backfill.ReleaseRecordData).
type Sender interface {
	Send(ctx context.Context, route backfill.Route, events []backfill.Event) (uploader.Result, error)
}

// DeadLetter receives rejected records (see deadletter.Writer).
type DeadLetter interface {
	Write(e deadletter.Entry) error
	Size() int64
	Sync() (int64, error)
}

// Config tunes a run. Zero fields take the Default* values.
type Config struct {
	// Lanes is the number of device lanes, i.e. the most requests in flight.
	Lanes int
	// EPS paces each device_id and user_id on /batch, in events per second
	// averaged over Amplitude's 30 s window; <0 means unpaced.
	EPS int
	// HTTPEPS is the same for /2/httpapi.
	HTTPEPS int
	// DailyBudget, when > 0, caps each device_id and user_id at this many
	// events per rolling 24 h (both routes), to stay under Amplitude's
	// daily quota instead of meeting its 429; ids over it are parked.
	DailyBudget int
	// BatchSize caps events per request (at most 2,000).
	BatchSize int
	// MaxBatchBytes and MaxHTTPBytes cap request bodies per route.
	MaxBatchBytes, MaxHTTPBytes int
	// Overhead is the body size without events (uploader.Client.Overhead).
	Overhead int
	// Linger is how long a request that is not full waits for more events.
	Linger time.Duration
	// MapWorkers is the number of goroutines mapping records to events.
	MapWorkers int
	// CheckpointEvery is the interval between checkpoint saves.
	CheckpointEvery time.Duration
	// ShutdownTimeout is how long requests in flight may take to finish
	// after the soft context ends; default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// WaitParked keeps the run going while ids are parked for their daily
	// quota, instead of ending with ErrParked.
	WaitParked bool
	// ParkFor is how long an id over its daily quota is held back.
	ParkFor time.Duration
	// FailFast ends the run at the first object-level error.
	FailFast bool
	// Reprocess re-reads objects whose content changed since they were
	// checkpointed, from their first record. Without it such an object is
	// reported as failed and left alone, so old and new content are never
	// mixed.
	Reprocess bool
	// SpillDir is where lanes spill the backlog of hot devices; default
	// os.TempDir().
	SpillDir string
	// Shard and Shards make this run shard Shard of Shards (0-based): it
	// reads every object and sends only the events whose key it owns
	// (backfill.ShardOf of backfill.Event.Key), dead-letters only the
	// records that fail before mapping gives them a key and that it owns by
	// position (backfill.ShardOfPosition), and settles the others as
	// checkpoint.Foreign. Shards <= 1 sends everything.
	Shard, Shards int
	// Logger receives progress and problems; default slog.Default().
	Logger *slog.Logger
	// Now is the clock for pacing; default time.Now.
	Now func() time.Time
	// DupeSlots sizes the detector of different events sharing an id and
	// insert_id (see dupes.go); default DefaultDupeSlots, <0 turns it off.
	DupeSlots int
}

func (c *Config) defaults() {
	if c.Lanes <= 0 {
		c.Lanes = DefaultLanes
	}
	if c.EPS == 0 {
		c.EPS = amplitude.DefaultEPS
	}
	if c.HTTPEPS == 0 {
		c.HTTPEPS = DefaultHTTPEPS
	}
	if c.BatchSize <= 0 || c.BatchSize > amplitude.MaxEvents {
		c.BatchSize = amplitude.MaxEvents
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = amplitude.PackBytes(backfill.RouteBatch)
	}
	if c.MaxHTTPBytes <= 0 {
		c.MaxHTTPBytes = amplitude.PackBytes(backfill.RouteHTTP)
	}
	if c.MapWorkers <= 0 {
		c.MapWorkers = DefaultMapWorkers
	}
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = DefaultCheckpointEvery
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.ParkFor <= 0 {
		c.ParkFor = DefaultParkFor
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Deps are the stages a run connects.
type Deps struct {
	Objects    Lister
	Mapper     Mapper
	Sender     Sender
	Tracker    *checkpoint.Tracker
	DeadLetter DeadLetter
	// Save persists the tracker's state; called every CheckpointEvery and
	// once at the end. It must call Tracker.Fill itself.
	Save func(ctx context.Context) error
	// Journal, if set, makes acknowledgements durable between saves.
	Journal Journal
	// Resume seeds the pacing budgets with what earlier runs spent.
	Resume Resume
}

// Run moves every record of deps.Objects to Amplitude or the dead-letter
// file. soft ends reading (first Ctrl-C); hard aborts everything (second
// Ctrl-C). stats may be nil; it is updated live for progress displays.
//
// Run returns nil when every object was read and every record settled,
// ErrInterrupted, ErrParked, an error wrapping uploader.ErrFatal, or the
// first object-level error with FailFast. Object errors without FailFast
// are reported in the returned []ObjectStat and do not stop the run.
func Run(hard, soft context.Context, cfg Config, deps Deps, stats *Stats) ([]ObjectStat, error) {
	cfg.defaults()
	if stats == nil {
		stats = new(Stats)
	}
	r := &run{cfg: cfg, deps: deps, stats: stats, log: cfg.Logger.With("component", "pipeline")}
	return r.run(hard, soft)
}
