// Package step reports the steps of the scan stage (catalog an image, load the
// vulnerability database, scan an SBOM) to an observe.Observer.
package step

import (
	"time"

	"github.com/shipkit/shipkit/observe"
)

// Stage is the stage name the scan packages report under.
const Stage = "scan"

// Step is one step, reported as Started and then Finished or Failed. It is not
// safe for concurrent use; each goroutine reports its own steps.
type Step struct {
	obs     observe.Observer
	name    string
	started bool
	ended   bool
}

// New returns a step named name that reports to obs (nil: nowhere).
func New(obs observe.Observer, name string) *Step {
	if obs == nil {
		obs = observe.Discard{}
	}
	return &Step{obs: obs, name: name}
}

// Start reports the step started; name replaces the step's name when not empty,
// for a step that learns what it works on (a platform, a digest) only once
// under way.
func (s *Step) Start(name, msg string) {
	if s.started {
		return
	}
	if name != "" {
		s.name = name
	}
	s.started = true
	s.emit(observe.Event{Phase: observe.Started, Message: msg})
}

// Finish reports the step finished.
func (s *Step) Finish(msg string) {
	if s.ended {
		return
	}
	s.Start("", "")
	s.ended = true
	s.emit(observe.Event{Phase: observe.Finished, Message: msg})
}

// Fail reports the step failed with err; a step that failed before it started is
// reported started first, so every Failed follows a Started.
func (s *Step) Fail(err error) {
	if s.ended {
		return
	}
	s.Start("", "")
	s.ended = true
	s.emit(observe.Event{Phase: observe.Failed, Err: err, Message: err.Error()})
}

func (s *Step) emit(e observe.Event) {
	e.Stage, e.Step, e.Time = Stage, s.name, time.Now()
	s.obs.Observe(e)
}
