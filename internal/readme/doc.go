// Package readme holds the test that runs every command and URL example of
// the repository's README.md as written: it extracts them from the file (so
// a changed example is tested as changed), runs each through sh with the
// real binary on PATH in a fresh working directory, against the Amplitude
// emulator and in-process S3, GCS and Azure fakes, and checks the exit
// code. The few examples that cannot run here (kubectl, docker, go install,
// make, synopses with placeholders) are skipped by an explicit rule that
// says why; an example no rule knows fails the test.
package readme
