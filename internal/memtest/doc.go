// Package memtest holds the bounded-memory tests of the whole pipeline; it
// has no code of its own, only tests.
//
// The README promises that "a 10 GB input runs in the same memory as a 10 MB
// one". The tests check it in-process: job.Run reads generated inputs many
// times larger than the pipeline's buffers (JSON lines, typed CSV, Parquet)
// and sends them to the emulator (limits off, events discarded), while a
// goroutine samples runtime.ReadMemStats every 20 ms. The emulator runs in
// a child process, the test binary started again, so that only the
// pipeline's heap is measured.
// Each format runs at two sizes, the second four times the first, and the
// tests assert that the peak heap stays under a fixed bound and that the
// larger input's peak is within a small margin of the smaller's: memory is
// flat in the input size. A skewed input, where one device holds half of
// the events and is paced far below the rate they are read at, checks the
// same for the hot device's backlog, which must spill to disk instead of
// growing the heap.
//
// Every run must also deliver every event exactly once (the emulator's
// counters), report events_read == events_accepted + events_rejected
// (+ events_pending for the skewed run, which is stopped gracefully once
// everything its pace allows has been sent), and leave no goroutine and no
// spill file behind.
//
// The tests are skipped with -short. Under the race detector, which makes
// the pipeline several times slower, the uniform inputs are five times
// smaller (the skewed one cannot shrink: its backlog must exceed what a lane
// keeps in memory); the package then takes about 30 s on 2 cores.
package memtest
