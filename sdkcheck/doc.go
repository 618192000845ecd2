// Package sdkcheck holds no code: its tests drive the emulator with the
// official Go SDK, github.com/amplitude/analytics-go v1.3.1, to prove the
// emulator speaks the same contract as Amplitude. It is a separate module
// so the SDK never becomes a dependency of backfill itself.
//
// Run it with: cd sdkcheck && go test ./...
package sdkcheck
