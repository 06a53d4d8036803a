package rollout

import (
	"fmt"
	"strconv"
	"strings"
)

// NotAnalysedError refuses to promote a revision while analysis steps of the plan
// have not passed for it (the plan gained an analysis step since the state was
// recorded, or the state was put back to an earlier point). Nothing moves; Abort the
// rollout, then Retry it to start the revision again from its first step.
type NotAnalysedError struct {
	// Revision is the revision that was to be promoted.
	Revision string
	// Steps are the analysis steps (1-based, as the plan numbers them) that did not
	// pass for it.
	Steps []int
}

// Error names the revision and the steps whose analysis has not passed for it.
func (e *NotAnalysedError) Error() string {
	steps := make([]string, len(e.Steps))
	for i, s := range e.Steps {
		steps[i] = strconv.Itoa(s)
	}
	return fmt.Sprintf("promotion of revision %s refused: the analysis of step %s has not passed for it", e.Revision, strings.Join(steps, ", "))
}

// TemplateChangedError refuses to promote a Deployment whose pod template is no
// longer the revision that was analysed: someone changed it during the rollout. The
// rollout is aborted (all traffic back to the old version); the next Run rolls the
// new template out from the first step.
type TemplateChangedError struct {
	// Namespace and Deployment name the Deployment that was to be promoted.
	Namespace, Deployment string
	// Analysed is the revision the steps judged, Live the one the Deployment runs.
	Analysed, Live string
}

// Error names the Deployment and the live and analysed revisions.
func (e *TemplateChangedError) Error() string {
	return fmt.Sprintf("promotion refused: the pod template of Deployment %s/%s is revision %s, not the analysed revision %s",
		e.Namespace, e.Deployment, e.Live, e.Analysed)
}
