package backfill

import "errors"

// Outcome is how a run or a job ended. It is named once here and travels
// up unchanged: the pipeline returns errors that carry one (ErrInterrupted,
// pipeline.ErrParked), the job's report stores it as its status, and the
// command maps it to its exit code.
type Outcome string

// Outcomes, as written in the report's "status" field.
const (
	// Complete: every record was read and accepted.
	Complete Outcome = "complete"
	// Rejected: every record was read and settled, some in the dead-letter
	// file.
	Rejected Outcome = "complete_with_rejections"
	// Failed: the run stopped on an error, or some objects could not be
	// read.
	Failed Outcome = "failed"
	// Interrupted: a signal ended the run; the checkpoint holds where to
	// resume.
	Interrupted Outcome = "interrupted"
	// Incomplete: the run ended with work left for a later run (ids parked
	// for Amplitude's daily quota).
	Incomplete Outcome = "incomplete"
)

// ErrInterrupted is returned when a signal ended a run before every object
// was read and settled: the checkpoint holds where to resume. Its Outcome
// is Interrupted.
var ErrInterrupted = OutcomeError(Interrupted, "interrupted")

// OutcomeError returns a sentinel error with message msg that stands for
// outcome o (see OutcomeOf).
func OutcomeError(o Outcome, msg string) error { return &outcomeError{o: o, msg: msg} }

type outcomeError struct {
	o   Outcome
	msg string
}

func (e *outcomeError) Error() string { return e.msg }

// OutcomeOf returns the outcome err stands for: Complete for nil, the
// outcome of the first error in err's chain made by OutcomeError, Failed
// for any other error.
func OutcomeOf(err error) Outcome {
	if err == nil {
		return Complete
	}
	var oe *outcomeError
	if errors.As(err, &oe) {
		return oe.o
	}
	return Failed
}
