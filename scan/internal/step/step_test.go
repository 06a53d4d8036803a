package step_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/scan/internal/step"
)

func record(events *[]observe.Event) observe.Observer {
	return observe.ObserverFunc(func(e observe.Event) { *events = append(*events, e) })
}

func TestStep(t *testing.T) {
	var events []observe.Event
	s := step.New(record(&events), "catalog")
	s.Start("catalog linux/amd64", "sha256:abc")
	s.Finish("3 packages")
	s.Fail(errors.New("late")) // ignored: the step ended
	if assert.Len(t, events, 2) {
		assert.Equal(t, observe.Started, events[0].Phase)
		assert.Equal(t, "catalog linux/amd64", events[0].Step)
		assert.Equal(t, "scan", events[0].Stage)
		assert.Equal(t, observe.Finished, events[1].Phase)
		assert.Equal(t, "catalog linux/amd64", events[1].Step)
		assert.Equal(t, "3 packages", events[1].Message)
		assert.False(t, events[1].Time.Before(events[0].Time))
	}
}

func TestStepFailBeforeStart(t *testing.T) {
	var events []observe.Event
	err := errors.New("no image")
	step.New(record(&events), "catalog").Fail(err)
	if assert.Len(t, events, 2) {
		assert.Equal(t, observe.Started, events[0].Phase)
		assert.Equal(t, observe.Failed, events[1].Phase)
		assert.Equal(t, "catalog", events[1].Step)
		assert.ErrorIs(t, events[1].Err, err)
	}
	step.New(nil, "quiet").Finish("") // a nil observer is no observer
}
