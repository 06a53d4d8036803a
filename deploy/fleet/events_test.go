package fleet_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/deploy/fleet"
	"github.com/shipkit/shipkit/observe"
)

// TestEvents: a fleet of three clusters, one failing, reports one step "fleet" of
// stage deploy: started once, a progress event per cluster counting up to three (the
// failed cluster's names its error), then failed with the *fleet.Error. A fleet that
// succeeds finishes the step.
func TestEvents(t *testing.T) {
	var (
		mu     sync.Mutex
		events []observe.Event
	)
	obs := observe.ObserverFunc(func(e observe.Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
	g := newGate()
	g.failures["c1"] = errors.New("boom")
	close(g.release) // every other cluster succeeds at once
	cs := []fleet.Cluster{g.cluster("c0"), g.cluster("c1"), g.cluster("c2")}
	_, err := fleet.Apply(t.Context(), cs, nil, fleet.Options{Concurrency: 1, Observer: obs})
	var fe *fleet.Error
	require.ErrorAs(t, err, &fe)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, events, 5)
	want := []observe.Phase{observe.Started, observe.Progress, observe.Progress, observe.Progress, observe.Failed}
	for i, e := range events {
		assert.Equal(t, want[i], e.Phase, "event %d", i)
		assert.Equal(t, observe.StageDeploy, e.Stage)
		assert.Equal(t, "fleet", e.Step)
		assert.Equal(t, int64(3), e.Total)
	}
	assert.Equal(t, "apply in 3 clusters", events[0].Message)
	assert.Equal(t, "c1: boom", events[2].Message)
	assert.Equal(t, int64(3), events[3].Done)
	assert.ErrorAs(t, events[4].Err, &fe)

	events = nil
	mu.Unlock()
	_, err = fleet.Plan(t.Context(), cs[:1], nil, fleet.Options{Observer: obs})
	mu.Lock()
	require.NoError(t, err)
	require.Len(t, events, 3)
	assert.Equal(t, observe.Finished, events[2].Phase)
	assert.Equal(t, "plan done in 1 clusters", events[2].Message)
}
