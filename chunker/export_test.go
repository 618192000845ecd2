package chunker

import "github.com/backfillhq/backfill"

// Spilled returns the number of events in spill files.
func (l *Lane) Spilled() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.spilled
}

// Limit returns the number of events one id may send per window, 0 when
// unlimited.
func (b *Budget) Limit() int { return b.limit }

// Tracked returns how many ids are tracked exactly (for tests and memory
// accounting); the others are only in the fixed-size sketch.
func (b *Budget) Tracked() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.ids[Device]) + len(b.ids[User])
}

// Key is the partition key of an event: its device_id, or its user_id when
// it has no device (Amplitude then derives the device from the user).
func Key(ev *backfill.Event) string {
	if ev.DeviceID != "" {
		return ev.DeviceID
	}
	return "\x00" + ev.UserID
}
