// Package storagee2e is the end-to-end suite over real storage servers run
// as separate processes (see internal/storagesrv): MinIO for s3://,
// fake-gcs-server for gs:// (reached through STORAGE_EMULATOR_HOST) and
// Azurite for azblob://. The backfill binary runs as a child process
// against an in-process emulator of Amplitude.
//
// Over each server one job goes through: a hive-style layout of 32 objects
// in four formats with _SUCCESS markers, the checkpoint in the bucket, a
// SIGKILL and a resume, the server restarted while the resumed run reads,
// an incremental run after new objects land, a glob source with the URL
// query parameters the README shows, and wrong credentials and a missing
// bucket, whose errors must name the bucket and say what to do.
//
// A server that is not installed makes its tests skip, naming it; set
// BACKFILL_STORAGE_REQUIRE=1 to make that a failure instead. `make test`
// installs the servers first (scripts/storage-servers.sh).
package storagee2e
