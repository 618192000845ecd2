// Package pipeline wires the stages of a backfill together and owns every
// goroutine of a run: one reader walks the source objects in order, map
// workers turn records into events in parallel (their results are put back
// in source order), a dispatcher hashes each event to a device lane, one
// goroutine per lane packs and sends requests (at most one in flight per
// lane, so each device's events arrive in source order), and a checkpointer
// persists the settled positions.
//
// The source is laid out by stage: topology.go starts the goroutines and
// decides the run's outcome, read.go walks the objects and feeds the map
// workers, dispatch.go puts mapped events on their lanes (and holds the
// route barrier), lane.go paces and sends each lane's requests through
// throttle.go (the one place a 429 turns into pauses and parks of ids),
// settle.go applies a response to the tracker and the dead-letter file
// (refused.go reads the records of refused events again from their objects
// for their entries), and stats.go holds the live counters.
//
// All goroutines run under one errgroup with bounded channels. The first
// cancellation of the soft context stops reading; requests in flight finish
// (they use the hard context), the checkpoint is saved, and Run returns
// ErrInterrupted. Cancelling the hard context aborts at once.
//
// # Resumption
//
// Every record is registered with the checkpoint.Tracker when read and
// settled when the server accepted it or it was dead-lettered, writing the
// dead-letter entry inside the same critical section, so a saved state and
// the dead-letter file always agree.
package pipeline
