package testbed

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// maxPoll is the longest pause of [WaitFor] between two checks.
const maxPoll = 200 * time.Millisecond

// WaitFor calls check until it returns nil, pausing a little longer each time (up to
// 200ms), and names what it waits for in its errors. It gives up when one of procs
// exits, with the error of [Process.Exited], or when ctx ends, with the last error of
// check and the tails of the logs of procs.
func WaitFor(ctx context.Context, what string, check func(context.Context) error, procs ...*Process) error {
	pause := 10 * time.Millisecond
	for {
		for _, p := range procs {
			if err := p.Exited(); err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
		}
		last := check(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			var tails strings.Builder
			for _, p := range procs {
				fmt.Fprintf(&tails, "\n%s", p.logHeading(tailLines))
			}
			return fmt.Errorf("waiting for %s: %w (last check: %w)%s", what, context.Cause(ctx), last, tails.String())
		case <-time.After(pause):
			pause = min(2*pause, maxPoll)
		}
	}
}
