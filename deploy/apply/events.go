package apply

import (
	"fmt"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/observe"
)

// step starts reporting a step of the deploy stage over total objects: Progress
// once per object, then End.
func (m *Manager) step(name string, total int) *observe.Step {
	return observe.StartStep(m.opts.Observer, observe.StageDeploy, name, int64(total), fmt.Sprintf("%s %d objects", name, total))
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
