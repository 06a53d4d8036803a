package observe_test

import (
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
