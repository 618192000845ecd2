// Package chunker partitions events into device lanes and packs them into
// Amplitude requests under the API's limits and the per-id rate budgets.
//
// A Lane holds one FIFO queue per device (per user for events without a
// device) and packs requests round-robin over its devices, bounded by count
// (2,000 events) and encoded bytes. A Budget, shared by all lanes, keeps a
// sliding 30 s window per device_id and per user_id, the way Amplitude
// measures events per device/user second, so no id is sent faster than the
// configured pace: cold devices flow at full speed while hot ones wait for
// budget, and the wait never blocks the other devices of the lane.
//
// The package is synchronous and deterministic: callers pass the time in, so
// tests never sleep. Goroutines live in the pipeline.
package chunker
