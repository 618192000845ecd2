// Package sharding holds the end-to-end tests of sharded runs and of the
// Kubernetes manifests in deploy/k8s; it has no code of its own.
//
// The sharded-run test builds the real binary, serves an in-process S3
// (gofakes3) holding a multi-object input and the shared checkpoint, and an
// in-process Amplitude emulator enforcing a per-id limit. It runs three
// worker processes in parallel, one shard each (two with --shard i/3, one
// with --shard-count 3 and JOB_COMPLETION_INDEX as a Kubernetes Indexed Job
// sets it), SIGKILLs one mid-run and restarts it the way a replacement pod
// starts: on a fresh disk, waiting out the dead worker's bucket lock with
// --lock-wait and a short --lock-ttl. It then asserts from the emulator that
// every event was accepted exactly once (re-sends only from the killed
// shard), that no device or user went over the limit across the workers
// combined (no 429 at all), and that `backfill status` and `backfill report`
// aggregate the three shards' checkpoints into one complete job.
//
// The manifest test parses every YAML document under deploy/k8s and checks
// the invariants a Kubernetes API server and the binary rely on: an Indexed
// Job whose completions, parallelism and --shard-count agree, the API key
// from a Secret, a restart policy compatible with podFailurePolicy, and args
// that the real binary accepts (a --dry-run against the in-process S3).
//
// Under -short both tests skip their parts that run the binary.
package sharding
