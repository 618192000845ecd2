// Package ceiling keeps a whole run under a project's limits, not only each
// id's: at most EPS events and RPS requests per second on one route, shared
// by every lane, and lower still while Amplitude pushes back.
//
// A Limiter is two exact sliding windows (events and requests): a request
// goes when it fits, so no window of one second ever holds more than the
// ceilings, whatever the sizes and timing of the requests. Every request on
// the wire, retries included, first calls Wait for its events and one
// request; callers queue in arrival order and only the head of the queue
// sleeps, so the time the head sleeps is exactly the time the run was held
// back. Requests are kept to a tenth of a window (MaxEvents): one leaving
// the window then makes room for the next, and the ceiling is reached, not
// approached in steps of whole windows.
//
// The windows are written here rather than taken from golang.org/x/time/rate
// for two reasons. A token bucket lets a full bucket plus a second's refill
// through in one second, twice the ceiling, which a project counting its
// limit per second (as Amplitude states it) refuses. And the rate changes
// while requests wait: rate.Limiter's reservations keep the delay computed
// at the old rate, so after a cut the lanes already queued would still send
// at the old pace, which is the overload being answered. Here a waiting
// request re-reads the rate at least every MaxNap.
//
// # Adaptation (AIMD)
//
// Done reports each response. Pushback (a 429 that names none of the
// request's ids, a 503 or 504, a timeout) lowers the events ceiling
// multiplicatively: to 95% of what it was, or to half when no answer was
// clean over the last two seconds, but never below 95% of the events the
// project took in over those two seconds (a burst of answers to an overload
// must not cut the rate to a fraction of the limit it overloads). It is cut
// from what was really sent over the last second when the ceiling was not
// what held the run back, in particular on a route without one; a first
// ceiling starts counted full with what was sent over that second. Only the first
// pushback to a request sent at the current ceiling cuts it, so a burst of
// answers to requests already in flight counts once, as TCP counts one loss
// per round trip. Clean answers raise the ceiling additively, by 1% per
// second of the rate before the last cut (at least 10 events/s per second,
// so that a ceiling an outage cut to its floor climbs back), but only while the ceiling is what
// holds the run back (an idle ceiling learns nothing), and never above the
// configured one. The floor is 1 event/s: Done reports a pushback as
// absorbed (the caller should not count it as a failed attempt) unless the
// ceiling was already at its floor. The requests ceiling is only ever the
// configured one: a 429 does not say which limit it enforces, and with
// requests of a tenth of the events ceiling, cutting events cuts requests
// too.
//
// All methods are safe for concurrent use, and a nil *Limiter is an
// unlimited one that records nothing. The clock and the sleep are injected
// (Options.Now, Options.Sleep), so tests run simulated time.
package ceiling
