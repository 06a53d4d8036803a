package apply

import (
	"fmt"

	"github.com/shipkit/shipkit/observe"
)

// step starts reporting a step of the deploy stage over total objects: Progress
// once per object, then End.
func (m *Manager) step(name string, total int) *observe.Step {
	return observe.StartStep(m.opts.Observer, observe.StageDeploy, name, int64(total), fmt.Sprintf("%s %d objects", name, total))
}
