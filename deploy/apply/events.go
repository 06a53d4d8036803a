package apply

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/observe"
)

// step reports one step of the manager's work to its observer.
type step struct {
	obs   observe.Observer
	name  string
	total int64
	done  atomic.Int64
}

// step starts reporting a step over total objects.
func (m *Manager) step(name string, total int) *step {
	s := &step{obs: m.opts.Observer, name: name, total: int64(total)}
	s.emit(observe.Event{Phase: observe.Started, Message: fmt.Sprintf("%s %d objects", name, total)})
	return s
}

// object reports that the step is done with one more object.
func (s *step) object(msg string) {
	if s == nil {
		return
	}
	s.emit(observe.Event{Phase: observe.Progress, Done: s.done.Add(1), Message: msg})
}

// end reports the step's end: Finished with msg, or Failed with err.
func (s *step) end(err error, msg string) {
	if s == nil {
		return
	}
	e := observe.Event{Phase: observe.Finished, Done: s.done.Load(), Message: msg}
	if err != nil {
		e.Phase, e.Err, e.Message = observe.Failed, err, err.Error()
	}
	s.emit(e)
}

func (s *step) emit(e observe.Event) {
	e.Stage, e.Step, e.Total, e.Time = "deploy", s.name, s.total, time.Now()
	s.obs.Observe(e)
}

// summary counts the actions of a change set: "2 created, 1 configured, 3 unchanged".
func summary(cs *deploy.ChangeSet) string {
	if cs == nil || len(cs.Changes) == 0 {
		return "no objects"
	}
	out := ""
	for _, a := range []deploy.Action{deploy.Created, deploy.Configured, deploy.Unchanged, deploy.Pruned} {
		if n := cs.Count(a); n > 0 {
			if out != "" {
				out += ", "
			}
			out += fmt.Sprintf("%d %s", n, a)
		}
	}
	return out
}
