package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// burstWindow is how long after the first stop signal further signals
// count as the same request. GNU timeout (without --foreground) sends its
// SIGTERM to the child and then to the whole process group, so the child
// gets two SIGTERMs microseconds apart; a terminal's Ctrl-C reaches every
// process of the foreground group at once. Neither is a second Ctrl-C.
const burstWindow = 500 * time.Millisecond

// signalPolicy turns stop signals into the two levels of shutdown, and is
// documented in the README (Resuming): the first SIGINT or SIGTERM stops
// gracefully (soft: stop reading, let requests in flight finish, save the
// checkpoint, exit 130); signals within burstWindow of it are ignored as
// part of the same burst; a later SIGINT or SIGTERM aborts (hard). It
// returns when the channel is closed or after the abort.
func signalPolicy(sigs <-chan os.Signal, now func() time.Time, soft, hard func(), stderr io.Writer) {
	var first time.Time
	for sig := range sigs {
		t := now()
		switch {
		case first.IsZero():
			first = t
			fmt.Fprintf(stderr, "\nstopping (%v): finishing requests in flight and saving the checkpoint (press Ctrl-C again to abort)\n", sig)
			soft()
		case t.Sub(first) < burstWindow:
			// The same stop request, delivered twice (see burstWindow).
		default:
			fmt.Fprintf(stderr, "aborting (second %v): requests in flight are cancelled; their events are sent again by the next run\n", sig)
			hard()
			return
		}
	}
}
