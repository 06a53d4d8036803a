package observe_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/observe"
)

// recorder keeps the events it observes, safe for concurrent use.
type recorder struct {
	mu     sync.Mutex
	events []observe.Event
}

func (r *recorder) Observe(e observe.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) phases() []observe.Phase {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]observe.Phase, len(r.events))
	for i, e := range r.events {
		out[i] = e.Phase
	}
	return out
}

func TestStepOrderAndEnd(t *testing.T) {
	rec := &recorder{}
	s := observe.StartStep(rec, observe.StageDeploy, "apply", 3, "apply 3 objects")
	s.Progress("a created")
	s.Progress("b created")
	s.Finish("2 created")
	s.Progress("after the end")         // dropped
	s.End(errors.New("too late"), "")   // dropped
	s.Start("renamed", "started again") // dropped
	require.Len(t, rec.events, 4)
	assert.Equal(t, []observe.Phase{observe.Started, observe.Progress, observe.Progress, observe.Finished}, rec.phases())
	for _, e := range rec.events {
		assert.Equal(t, observe.StageDeploy, e.Stage)
		assert.Equal(t, "apply", e.Step)
		assert.Equal(t, int64(3), e.Total)
		assert.False(t, e.Time.IsZero())
	}
	assert.Equal(t, "apply 3 objects", rec.events[0].Message)
	assert.Equal(t, int64(2), rec.events[2].Done)
	assert.Equal(t, int64(2), rec.events[3].Done)
	assert.Equal(t, "2 created", rec.events[3].Message)
}

func TestStepFailBeforeStart(t *testing.T) {
	rec := &recorder{}
	s := observe.NewStep(rec, observe.StageScan, "catalog", 0)
	s.Start("catalog linux/arm64", "")
	err := errors.New("layer 2: unexpected EOF")
	assert.Same(t, err, s.Fail(err))
	require.Equal(t, []observe.Phase{observe.Started, observe.Failed}, rec.phases())
	assert.Equal(t, "catalog linux/arm64", rec.events[1].Step, "Start renames a step that has not started")
	assert.Equal(t, err, rec.events[1].Err)
	assert.Equal(t, err.Error(), rec.events[1].Message)

	rec2 := &recorder{}
	observe.NewStep(rec2, observe.StageScan, "load", 0).End(err, "")
	assert.Equal(t, []observe.Phase{observe.Started, observe.Failed}, rec2.phases(), "a step that ends first is reported started first")
}

func TestStepConcurrentProgress(t *testing.T) {
	rec := &recorder{}
	s := observe.StartStep(rec, observe.StageSign, "verify", 100, "")
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() { s.Progress(fmt.Sprint(i)) })
	}
	wg.Wait()
	s.Finish("done")
	ph := rec.phases()
	require.Len(t, ph, 102)
	assert.Equal(t, observe.Started, ph[0])
	assert.Equal(t, observe.Finished, ph[101])
	// Done counts up by one per event, in the order the observer saw them.
	for i := 1; i <= 100; i++ {
		assert.Equal(t, int64(i), rec.events[i].Done)
	}
	assert.Equal(t, int64(100), s.Done())
}

func TestStepProgressTo(t *testing.T) {
	rec := &recorder{}
	s := observe.StartStep(rec, observe.StageBuild, "push", 0, "")
	s.ProgressTo(512, 2048, "")
	s.ProgressTo(2048, 2048, "")
	s.Finish("pushed")
	s.ProgressTo(4096, 4096, "after the end") // dropped
	require.Equal(t, []observe.Phase{observe.Started, observe.Progress, observe.Progress, observe.Finished}, rec.phases())
	assert.Equal(t, [2]int64{512, 2048}, [2]int64{rec.events[1].Done, rec.events[1].Total})
	assert.Equal(t, [2]int64{2048, 2048}, [2]int64{rec.events[3].Done, rec.events[3].Total}, "the end carries the last counts")
	assert.Equal(t, int64(0), rec.events[0].Total, "a total learnt later is not claimed before")
}

func TestStepNilAndDefaults(t *testing.T) {
	var s *observe.Step
	assert.NotPanics(t, func() {
		s.Start("x", "")
		s.Progress("")
		s.ProgressTo(1, 2, "")
		s.Finish("")
		assert.Nil(t, s.Fail(nil))
	})
	var zero observe.Step
	assert.NotPanics(t, func() { zero.Finish("") })
	// A step without an observer reports nowhere, and does not fail.
	observe.StartStep(nil, observe.StageBuild, "push", 0, "").Finish("")
	assert.Equal(t, observe.Discard{}, observe.OrDiscard(nil))
	rec := &recorder{}
	assert.Same(t, rec, observe.OrDiscard(rec))
	assert.NotNil(t, observe.OrDiscardLogger(nil))
}

// A stage reports its steps through observe.Step; the caller's observer sees each
// step start, progress and end.
func ExampleStep() {
	obs := observe.ObserverFunc(func(e observe.Event) {
		fmt.Printf("%s %s %s %d/%d %s\n", e.Stage, e.Step, e.Phase, e.Done, e.Total, e.Message)
	})
	s := observe.StartStep(obs, observe.StageDeploy, "apply", 2, "apply 2 objects")
	s.Progress("Deployment/shop/web created")
	s.Progress("Service/shop/web created")
	s.Finish("2 created")
	// Output:
	// deploy apply started 0/2 apply 2 objects
	// deploy apply progress 1/2 Deployment/shop/web created
	// deploy apply progress 2/2 Service/shop/web created
	// deploy apply finished 2/2 2 created
}
