// Package parallel runs the independent items of a batch (the images of an index,
// the SBOMs of a fleet) on a bounded number of goroutines, for scan/sbom and
// scan/vuln.
package parallel

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// errStopped is the cause of the context the items see once one of them failed.
var errStopped = errors.New("stopped: another item failed")

// Do calls f(ctx, i) for i in [0, n), with at most workers calls running at once
// (workers ≤ 1: one after another, in order, as a plain loop). Items are started in
// index order. Once an item fails no further item is started and the context the
// running ones were given is cancelled. Do returns the error of the first item in
// index order that failed on its own (not because it was cancelled after another
// failed), or ctx's error if ctx ended first.
func Do(ctx context.Context, workers, n int, f func(ctx context.Context, i int) error) error {
	if workers > n {
		workers = n
	}
	if workers <= 1 {
		for i := range n {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := f(ctx, i); err != nil {
				return err
			}
		}
		return nil
	}
	inner, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for inner.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(inner, i); err != nil {
					errs[i] = err
					stop(errStopped)
				}
			}
		})
	}
	wg.Wait()
	stoppedByUs := ctx.Err() == nil && errors.Is(context.Cause(inner), errStopped)
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if !stoppedByUs || !errors.Is(err, context.Canceled) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	if first != nil {
		return first
	}
	return ctx.Err()
}
