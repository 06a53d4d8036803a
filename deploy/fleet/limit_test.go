package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/fleet"
	"github.com/shipkit/shipkit/mesh"
)

// gate counts the clusters being worked on and holds each until the test releases
// one.
type gate struct {
	mu       sync.Mutex
	running  int
	finished int // clusters that left the gate
	max      int
	started  []string
	release  chan struct{}
	failures map[string]error // a cluster that fails as soon as it starts
}

func newGate() *gate { return &gate{release: make(chan struct{}), failures: map[string]error{}} }

// cluster returns a cluster named name whose Apply and Plan go through the gate.
func (g *gate) cluster(name string) fleet.Cluster {
	return fleet.Cluster{Name: name, Applier: gated{g: g, name: name}}
}

func (g *gate) enter(ctx context.Context, name string) (*deploy.ChangeSet, error) {
	g.mu.Lock()
	g.running++
	g.max = max(g.max, g.running)
	g.started = append(g.started, name)
	err := g.failures[name]
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.running--
		g.finished++
		g.mu.Unlock()
	}()
	if err != nil {
		return nil, err
	}
	select {
	case <-g.release:
		return &deploy.ChangeSet{}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// state returns how many clusters run now, the most that ran at once, and which
// started, in order.
func (g *gate) state() (running, most int, started []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running, g.max, append([]string(nil), g.started...)
}

// waitFinished waits until n clusters have left the gate.
func (g *gate) waitFinished(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.finished >= n }, 10*time.Second, time.Millisecond,
		"%d clusters finished", n)
}

// waitRunning waits until at least n clusters run at once.
func (g *gate) waitRunning(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { r, _, _ := g.state(); return r >= n }, 10*time.Second, time.Millisecond,
		"%d clusters running", n)
}

type gated struct {
	g    *gate
	name string
}

func (a gated) Apply(ctx context.Context, _ []*unstructured.Unstructured) (*deploy.ChangeSet, error) {
	return a.g.enter(ctx, a.name)
}

func (a gated) Plan(ctx context.Context, _ []*unstructured.Unstructured) (*deploy.ChangeSet, error) {
	return a.g.enter(ctx, a.name)
}

// TestConcurrencyLimit runs seven clusters with a limit of 1, 2 and 3 (and the
// default), for Apply and Plan. The clusters block until released one at a time:
// before each release exactly min(limit, not yet released) run, and the most that
// ever ran at once is the limit. A fleet without a bound would start all seven at
// once and fail the check.
func TestConcurrencyLimit(t *testing.T) {
	const clusters = 7
	for _, verb := range []string{"apply", "plan"} {
		for _, limit := range []int{1, 2, 3, 0} {
			t.Run(fmt.Sprintf("%s/%d", verb, limit), func(t *testing.T) {
				want := limit
				if limit == 0 {
					want = fleet.DefaultConcurrency
				}
				g := newGate()
				var cs []fleet.Cluster
				for i := range clusters {
					cs = append(cs, g.cluster(fmt.Sprintf("c%d", i)))
				}
				run := fleet.Apply
				if verb == "plan" {
					run = fleet.Plan
				}
				done := make(chan error, 1)
				go func() {
					_, err := run(t.Context(), cs, nil, fleet.Options{Concurrency: limit})
					done <- err
				}()
				for left := clusters; left > 0; left-- {
					g.waitRunning(t, min(want, left))
					// Give a fleet that ignores its limit time to start more.
					time.Sleep(20 * time.Millisecond)
					running, _, _ := g.state()
					require.Equal(t, min(want, left), running, "clusters running with %d not yet released", left)
					g.release <- struct{}{}
					// The released cluster leaves before the next count: else a
					// count taken as it leaves and before the next starts is short.
					g.waitFinished(t, clusters-left+1)
				}
				require.NoError(t, <-done)
				_, most, started := g.state()
				assert.Equal(t, want, most, "the most clusters that ran at once")
				all := []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6"}
				if want == 1 {
					assert.Equal(t, all, started, "one at a time, in the order given")
				} else {
					assert.ElementsMatch(t, all, started)
				}
			})
		}
	}
}

// TestStopOnFailureSkipsUnstarted: with a limit of 2, c0 blocks and c1 fails at once.
// StopOnFailure cancels c0 and never starts c2..c5, whose results say they were
// skipped; without it every cluster runs.
func TestStopOnFailureSkipsUnstarted(t *testing.T) {
	boom := errors.New("boom")
	names := []string{"c0", "c1", "c2", "c3", "c4", "c5"}
	clustersOf := func(g *gate) []fleet.Cluster {
		var cs []fleet.Cluster
		for _, n := range names {
			cs = append(cs, g.cluster(n))
		}
		return cs
	}

	g := newGate()
	g.failures["c1"] = boom
	// c0 ends only when canceled; the timeout keeps a fleet that does not cancel it
	// from hanging the test.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	results, err := fleet.Apply(ctx, clustersOf(g), nil, fleet.Options{Concurrency: 2, StopOnFailure: true})
	var fe *fleet.Error
	require.ErrorAs(t, err, &fe)
	assert.ErrorIs(t, err, boom)
	_, _, started := g.state()
	assert.ElementsMatch(t, []string{"c0", "c1"}, started, "no cluster started after the failure")
	assert.ErrorIs(t, results[0].Err, context.Canceled, "the running cluster was canceled")
	assert.ErrorIs(t, results[1].Err, boom)
	for _, r := range results[2:] {
		assert.ErrorIs(t, r.Err, fleet.ErrSkipped, "%s", r.Cluster)
		assert.Nil(t, r.Changes, "%s", r.Cluster)
	}
	assert.Contains(t, fe.Error(), "2 of 6 clusters failed, 4 skipped")

	// Without StopOnFailure, the failure stops nothing.
	g = newGate()
	g.failures["c1"] = boom
	done := make(chan error, 1)
	go func() {
		_, err := fleet.Apply(t.Context(), clustersOf(g), nil, fleet.Options{Concurrency: 2})
		done <- err
	}()
	for range len(names) - 1 {
		g.release <- struct{}{}
	}
	err = <-done
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Failed, 1)
	assert.Equal(t, "c1", fe.Failed[0].Cluster)
	_, _, started = g.state()
	assert.ElementsMatch(t, names, started, "every cluster ran")
}

// TestNegativeConcurrencyRefused: a negative Concurrency is refused before any
// cluster starts, with an error naming it that matches the one invalid-option
// sentinel of every stage (deploy's and mesh's are the same value); 0 is the default.
func TestNegativeConcurrencyRefused(t *testing.T) {
	for _, run := range []func(context.Context, []fleet.Cluster, []*unstructured.Unstructured, fleet.Options) ([]fleet.Result, error){fleet.Apply, fleet.Plan} {
		g := newGate()
		results, err := run(t.Context(), []fleet.Cluster{g.cluster("a")}, nil, fleet.Options{Concurrency: -1})
		require.ErrorIs(t, err, deploy.ErrInvalidOption)
		assert.ErrorIs(t, err, mesh.ErrInvalidOption, "one sentinel across stages")
		assert.ErrorContains(t, err, "Concurrency -1")
		assert.Nil(t, results)
		_, _, started := g.state()
		assert.Empty(t, started, "no cluster contacted")
	}
}
