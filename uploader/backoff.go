package uploader

import (
	"math/rand/v2"
	"time"
)

// DefaultBackoff is capped exponential backoff with "equal jitter": the
// delay before send attempt+1 is uniform in [b/2, b], where
// b = min(DefaultBackoffCap, DefaultBackoffBase·2^(attempt-1)). Equal
// jitter rather than full jitter keeps delays growing until the cap, so
// DefaultMaxAttempts really spans an outage of 1-2 minutes (the 11 waits of
// 12 sends total 55-111 s), while still spreading lanes apart.
func DefaultBackoff(attempt int) time.Duration {
	b := backoffBound(attempt)
	return b/2 + rand.N(b/2+1)
}

func backoffBound(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	b := DefaultBackoffBase
	for i := 1; i < attempt && b < DefaultBackoffCap; i++ {
		b *= 2
	}
	return min(b, DefaultBackoffCap)
}
