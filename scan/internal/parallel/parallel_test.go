package parallel

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestDoBoundsAndCoversEveryItem(t *testing.T) {
	for _, workers := range []int{1, 2, 3, 8} {
		var running, peak atomic.Int32
		seen := make([]atomic.Int32, 20)
		err := Do(context.Background(), workers, len(seen), func(_ context.Context, i int) error {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			seen[i].Add(1)
			running.Add(-1)
			return nil
		})
		if err != nil {
			t.Fatalf("workers %d: %v", workers, err)
		}
		for i := range seen {
			if got := seen[i].Load(); got != 1 {
				t.Errorf("workers %d: item %d ran %d times", workers, i, got)
			}
		}
		if p := peak.Load(); p > int32(workers) {
			t.Errorf("workers %d: %d items ran at once", workers, p)
		}
	}
}

func TestDoSequentialIsInOrder(t *testing.T) {
	var order []int
	if err := Do(context.Background(), 1, 5, func(_ context.Context, i int) error {
		order = append(order, i)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(order) != "[0 1 2 3 4]" {
		t.Errorf("order %v", order)
	}
}

// TestDoReturnsTheFailureNotTheCancellation: item 3 fails at once; items running
// beside it see their context cancelled and return that; Do returns item 3's error.
func TestDoReturnsTheFailureNotTheCancellation(t *testing.T) {
	boom := errors.New("boom")
	var started atomic.Int32
	err := Do(context.Background(), 2, 10, func(ctx context.Context, i int) error {
		started.Add(1)
		if i == 3 {
			return fmt.Errorf("item 3: %w", boom)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("item %d: %w", i, ctx.Err())
		case <-time.After(20 * time.Millisecond):
			return nil
		}
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want item 3's error", err)
	}
	if n := started.Load(); n > 5 {
		t.Errorf("%d items started after the failure", n)
	}
}

func TestDoParentCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, workers := range []int{1, 2} {
		err := Do(ctx, workers, 3, func(ctx context.Context, i int) error { return ctx.Err() })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("workers %d: got %v", workers, err)
		}
	}
}
