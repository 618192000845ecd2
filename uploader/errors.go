package uploader

import (
	"errors"
	"fmt"
)

var (
	// ErrFatal marks a response no retry can fix: an invalid API key, a
	// missing request field, a malformed body, a 403, or a 400 that names no
	// event. The run should stop and the configuration be fixed.
	ErrFatal = errors.New("amplitude: fatal response")
	// ErrRetriesExhausted marks a request body that got a retryable failure
	// (408, 429 without event indexes, 5xx, timeout, network error)
	// Options.MaxAttempts times in a row.
	ErrRetriesExhausted = errors.New("amplitude: retries exhausted")
)

// StatusError describes a failed exchange with Amplitude. It unwraps to Err
// (ErrFatal or ErrRetriesExhausted) and, for network failures, to the
// underlying transport error.
type StatusError struct {
	// Status is the HTTP status of the last response, or 0 when the last
	// attempt got no (complete) response.
	Status int
	// Message is Amplitude's error text or the transport error, with the API
	// key redacted.
	Message string
	// Err is the sentinel: ErrFatal or ErrRetriesExhausted.
	Err error
	// Cause is the transport error of the last attempt, if any.
	Cause error
}

func (e *StatusError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("%v: %s", e.Err, e.Message)
	}
	return fmt.Sprintf("%v: status %d: %s", e.Err, e.Status, e.Message)
}

// Unwrap returns the sentinel and, when set, the transport error.
func (e *StatusError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Err, e.Cause}
	}
	return []error{e.Err}
}

// redactedCause hides the key inside a transport error while keeping it
// matchable with errors.Is/As.
type redactedCause struct {
	msg string
	err error
}

func (e *redactedCause) Error() string { return e.msg }
func (e *redactedCause) Unwrap() error { return e.err }
