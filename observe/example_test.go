package observe_test

import (
	"context"
	"fmt"

	"github.com/shipkit/shipkit/observe"
)

// An observer that prints every step as it ends, the way a CLI shows progress.
func ExampleObserverFunc() {
	var obs observe.Observer = observe.ObserverFunc(func(e observe.Event) {
		if e.Phase == observe.Finished || e.Phase == observe.Failed {
			fmt.Printf("%s: %s %s\n", e.Stage, e.Step, e.Phase)
		}
	})
	obs.Observe(observe.Event{Stage: "build", Step: "go build linux/amd64", Phase: observe.Started})
	obs.Observe(observe.Event{Stage: "build", Step: "go build linux/amd64", Phase: observe.Finished})
	// Output:
	// build: go build linux/amd64 finished
}

// Any function can answer an analysis's queries, e.g. a lookup in a caller's own
// metrics store.
func ExampleProviderFunc() {
	rates := map[string]float64{"checkout v2": 0.997}
	var p observe.Provider = observe.ProviderFunc(func(_ context.Context, q string) (float64, error) {
		v, ok := rates[q]
		if !ok {
			return 0, fmt.Errorf("query %q: %w", q, observe.ErrNoData)
		}
		return v, nil
	})
	fmt.Println(p.Query(context.Background(), "checkout v2"))
	fmt.Println(p.Query(context.Background(), "checkout v3"))
	// Output:
	// 0.997 <nil>
	// 0 query "checkout v3": no data
}
