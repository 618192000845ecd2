// Package crashtest holds the end-to-end crash tests of the backfill
// binary; it has no code of its own, only tests.
//
// The tests build the real binary once, serve an in-process Amplitude
// emulator (and, for the bucket variant, an in-process S3), generate a
// multi-file input in every source format with some invalid records, and
// then run `backfill run` and kill it with SIGKILL at seeded random moments,
// restarting the same command until the job completes. They assert from the
// emulator that every valid event was accepted exactly once by insert_id,
// that every invalid record was dead-lettered exactly once, that the events
// re-sent after the kills stay within the in-flight bound, and that the
// final report adds up. Further tests cover a graceful stop (SIGINT, exit
// 130) resuming without any re-send, the checkpoint lock, and a resume with
// a changed configuration.
//
// The seed of the kill schedule is logged; set CRASHTEST_SEED to replay it.
// Under -short the S3 variants are skipped and the crash loop kills 10
// times instead of 12. The tests need a Unix system (SIGKILL, SIGINT).
package crashtest
