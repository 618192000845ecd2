// Package checkpoint gives the pipeline durable, exact, kill -9-safe resume.
//
// A State records, per source object, a low watermark (every record below
// it is settled: accepted by the server, dead-lettered or filtered out) and
// the settled ranges above it, plus the cumulative job counters and the
// dead-letter file's size. A Tracker maintains that progress in memory while
// records settle out of order across device lanes; a Store saves it
// atomically to a local directory or a bucket and loads it back, falling
// back to the previous state if the newest is damaged; a Lock keeps two
// runs off the same checkpoint (and shard).
//
// # Resumption
//
// Start of a run:
//
//	st, err := store.Load(ctx)            // ErrNoCheckpoint: fresh run
//	err = checkpoint.CheckJob(st, fp, desc) // ErrMismatch unless --force
//	dl, err := deadletter.Open(path, st.DeadLetterSize)
//	tr := checkpoint.NewTracker(st)
//
// Per object: start := tr.Begin(url, objectFingerprint); skip it if
// start.Done, else open the reader at start.Resume (Record 0: from the
// beginning; otherwise seek to Resume.Offset, or row group/row for Parquet).
// For every record produced call tr.Read(pos) and drop the record when it
// returns true; when its fate is final call tr.SettleEvents(evs, idx,
// Accepted) for the events a request delivered, tr.SettleWith(pos,
// Accepted, nil) for one record or, for a rejected record,
// tr.SettleWith(pos, Rejected, func() error { return dl.Write(entry) }) so
// the dead-letter line and the settled record are recorded together. At the end of the object call tr.EOF(url, n), or
// tr.Fail(url, err) on an object error.
//
// Saving a checkpoint (per acknowledged chunk or every few seconds):
//
//	var st checkpoint.State // plus Job, JobDesc, Shard, Started, RunCount...
//	tr.Fill(&st, func(s *checkpoint.State) { s.DeadLetterSize = dl.Size(); journal.Compact(s) })
//	if _, err := dl.Sync(); err != nil { ... } // make those bytes durable first
//	err = store.Save(ctx, &st)
//
// Fill takes objects, counters and the dead-letter size in one critical
// section, so after a crash the records settled in the state, the counters
// and the dead-letter lines agree exactly: records not in the state are
// read and sent again (Amplitude drops the duplicates by insert_id) and
// their dead-letter lines, cut off by the truncation, are written again.
//
// # Journal
//
// Between saves, a Journal (Store.OpenJournal, after NewTracker) makes
// acknowledgements durable: a lane records each request (Journal.Sent),
// waits until the journal is durable (Journal.Wait: one group commit for
// all lanes waiting) before sending it, and records its accepted records
// (Journal.Acked) after settling them in the tracker. A save calls
// Journal.Compact from its Fill hook and Journal.Saved after Store.Save.
// After a kill only the requests in flight are sent again; OpenJournal
// replays what the state does not hold, and Store.Recover shows it without
// a lock. See Journal.
//
// # Errors
//
// Load returns ErrNoCheckpoint when there is no state, ErrVersion for a
// state written by a newer backfill and ErrCorrupt when neither the newest
// nor the previous state is readable. CheckJob returns a *MismatchError
// (ErrMismatch). Lock returns a *LockedError (ErrLocked) naming the owner;
// Lock.Refresh returns ErrLockLost when another run took a bucket lock over.
package checkpoint
