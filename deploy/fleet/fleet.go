// Package fleet applies the same objects to several clusters at once: one result per
// cluster, a bound on how many clusters are worked on concurrently, and, when asked,
// a stop at the first failure that cancels the clusters still running and skips the
// ones not started.
//
// A [Cluster] pairs a name with any [deploy.Applier] (deploy/apply's Manager, or a
// caller's own), so a fleet can mix implementations; [FromKubeconfig] makes one
// Manager per kubeconfig context.
package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/observe"
)

// DefaultConcurrency is how many clusters are worked on at once unless
// [Options.Concurrency] says otherwise.
const DefaultConcurrency = 4

// Cluster is one target of a fleet.
type Cluster struct {
	// Name identifies the cluster in results, errors and events (e.g. the kubeconfig
	// context).
	Name string
	// Applier applies to the cluster. [Plan] needs it to be a [deploy.Planner] too,
	// as deploy/apply's Manager is.
	Applier deploy.Applier
}

// Options configure [Apply] and [Plan]. The zero value works on
// [DefaultConcurrency] clusters at once and does not stop at a failure. Options
// that cannot work (a negative Concurrency) are refused before any cluster is
// contacted, with an error wrapping [deploy.ErrInvalidOption] that names them.
type Options struct {
	// Concurrency bounds how many clusters are worked on at once: 0 means
	// [DefaultConcurrency]; a negative value is refused.
	Concurrency int
	// StopOnFailure cancels the clusters still running at the first failure and
	// skips those not started; their results say so ([ErrSkipped], or the
	// cancellation).
	StopOnFailure bool
	// Observer receives the fleet's step (stage deploy, step "fleet"): started
	// once, a progress event per cluster as it ends (naming the cluster and its
	// changes or error), then finished or failed. nil: none.
	Observer observe.Observer
}

// Result is what happened in one cluster.
type Result struct {
	// Cluster is the cluster's name.
	Cluster string
	// Changes are what was applied or planned; on error, what was done before it.
	Changes *deploy.ChangeSet
	// Err is the cluster's failure, nil when it succeeded.
	Err error
	// Duration is how long the cluster took.
	Duration time.Duration
}

// ErrSkipped is the error of a cluster that was not started because another failed
// first and [Options.StopOnFailure] was set.
var ErrSkipped = errors.New("skipped after another cluster failed")

// Error lists the clusters that failed.
type Error struct {
	// Failed are the results of the clusters that failed or were skipped, in the
	// order of the clusters given.
	Failed []Result
	// Total is how many clusters there were.
	Total int
}

// Error names the clusters that failed or were skipped, with their errors and counts.
func (e *Error) Error() string {
	parts := make([]string, len(e.Failed))
	skipped := 0
	for i, r := range e.Failed {
		parts[i] = fmt.Sprintf("%s: %v", r.Cluster, r.Err)
		if errors.Is(r.Err, ErrSkipped) {
			skipped++
		}
	}
	counts := fmt.Sprintf("%d of %d clusters failed", len(e.Failed)-skipped, e.Total)
	if skipped > 0 {
		counts += fmt.Sprintf(", %d skipped", skipped)
	}
	return "fleet: " + counts + ": " + strings.Join(parts, "; ")
}

// Unwrap returns each failed cluster's error, so errors.As finds, say, an
// apply.ConflictError in any of them.
func (e *Error) Unwrap() []error {
	out := make([]error, len(e.Failed))
	for i, r := range e.Failed {
		out[i] = r.Err
	}
	return out
}

// Apply applies objs to every cluster and returns a result per cluster, in the
// order given. The error is nil when every cluster succeeded, else an *[Error].
func Apply(ctx context.Context, clusters []Cluster, objs []*unstructured.Unstructured, opts Options) ([]Result, error) {
	return run(ctx, "apply", clusters, opts, func(ctx context.Context, c Cluster) (*deploy.ChangeSet, error) {
		return c.Applier.Apply(ctx, objs)
	})
}

// Plan plans objs in every cluster (each Applier must be a [deploy.Planner]) and
// returns a result per cluster, in the order given.
func Plan(ctx context.Context, clusters []Cluster, objs []*unstructured.Unstructured, opts Options) ([]Result, error) {
	return run(ctx, "plan", clusters, opts, func(ctx context.Context, c Cluster) (*deploy.ChangeSet, error) {
		p, ok := c.Applier.(deploy.Planner)
		if !ok {
			return nil, fmt.Errorf("its applier (%T) cannot plan", c.Applier)
		}
		return p.Plan(ctx, objs)
	})
}

func run(ctx context.Context, verb string, clusters []Cluster, opts Options, do func(context.Context, Cluster) (*deploy.ChangeSet, error)) ([]Result, error) {
	if err := validate(clusters, opts); err != nil {
		return nil, err
	}
	n := cmp.Or(opts.Concurrency, DefaultConcurrency)
	step := observe.StartStep(opts.Observer, observe.StageDeploy, "fleet", int64(len(clusters)),
		fmt.Sprintf("%s in %d clusters", verb, len(clusters)))
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]Result, len(clusters))
	sem := make(chan struct{}, n)
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for i, c := range clusters {
		results[i].Cluster = c.Name
		acquired := false
		select {
		case sem <- struct{}{}:
			acquired = true
		case <-ctx.Done():
		}
		if ctx.Err() != nil { // a failure stopped the fleet, or the caller did
			if acquired {
				<-sem
			}
			results[i].Err = ErrSkipped
			if err := parent.Err(); err != nil {
				results[i].Err = fmt.Errorf("not started: %w", err)
			}
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			start := time.Now()
			cs, err := do(ctx, c)
			r := Result{Cluster: c.Name, Changes: cs, Err: err, Duration: time.Since(start)}
			mu.Lock()
			results[i] = r
			msg := fmt.Sprintf("%s: %s", c.Name, describe(cs))
			if err != nil {
				msg = fmt.Sprintf("%s: %v", c.Name, err)
				if opts.StopOnFailure {
					cancel()
				}
			}
			mu.Unlock()
			step.Progress(msg)
		})
	}
	wg.Wait()
	fe := &Error{Total: len(clusters)}
	for _, r := range results {
		if r.Err != nil {
			fe.Failed = append(fe.Failed, r)
		}
	}
	if len(fe.Failed) > 0 {
		return results, step.Fail(fe)
	}
	step.Finish(fmt.Sprintf("%s done in %d clusters", verb, len(clusters)))
	return results, nil
}

// validate checks the clusters and the options before anything is contacted.
func validate(clusters []Cluster, opts Options) error {
	if opts.Concurrency < 0 {
		return fmt.Errorf("fleet: %w", option.Errorf("Concurrency %d is negative (0 means DefaultConcurrency)", opts.Concurrency))
	}
	seen := map[string]bool{}
	for i, c := range clusters {
		switch {
		case c.Name == "":
			return fmt.Errorf("fleet: cluster %d has no name", i)
		case c.Applier == nil:
			return fmt.Errorf("fleet: cluster %s has no applier", c.Name)
		case seen[c.Name]:
			return fmt.Errorf("fleet: cluster %s appears twice", c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

func describe(cs *deploy.ChangeSet) string {
	if cs == nil {
		return "nothing done"
	}
	return cs.Summary()
}
