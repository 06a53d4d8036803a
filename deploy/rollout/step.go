package rollout

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shipkit/shipkit/mesh"
	"github.com/shipkit/shipkit/observe/analysis"
)

// StepKind names what a [Step] does.
type StepKind string

// The kinds of step, in the vocabulary of Argo Rollouts.
const (
	// KindSetWeight sends a share of traffic to the canary.
	KindSetWeight StepKind = "SetWeight"
	// KindSetHeaderMatch routes requests with a header value to the canary.
	KindSetHeaderMatch StepKind = "SetHeaderMatch"
	// KindPause waits for a duration.
	KindPause StepKind = "Pause"
	// KindPauseUntilPromoted waits until someone calls Promote.
	KindPauseUntilPromoted StepKind = "PauseUntilPromoted"
	// KindAnalysis judges the canary by its metrics.
	KindAnalysis StepKind = "Analysis"
)

// Step is one step of a canary rollout. Make steps with [SetWeight], [SetHeaderMatch],
// [Pause], [PauseUntilPromoted] and [Analysis].
type Step struct {
	// Kind says what the step does; the other fields are those of its kind.
	Kind StepKind
	// Weight is the canary's percent of traffic (SetWeight).
	Weight int32
	// Header and Value are the header match (SetHeaderMatch).
	Header, Value string
	// Duration is how long to pause (Pause).
	Duration time.Duration
	// Checks judge the canary (Analysis).
	Checks []analysis.Check
}

// SetWeight sends percent (0–100) of traffic to the canary and waits until the canary
// Deployment is ready for it.
func SetWeight(percent int32) Step { return Step{Kind: KindSetWeight, Weight: percent} }

// SetHeaderMatch routes requests whose header equals value to the canary, whatever
// its weight (A/B testing).
func SetHeaderMatch(header, value string) Step {
	return Step{Kind: KindSetHeaderMatch, Header: header, Value: value}
}

// Pause waits for d. A rollout resumed after a crash waits only for what is left of d.
func Pause(d time.Duration) Step { return Step{Kind: KindPause, Duration: d} }

// PauseUntilPromoted waits until Promote is called for the rollout, from this process
// or another one.
func PauseUntilPromoted() Step { return Step{Kind: KindPauseUntilPromoted} }

// Analysis runs the checks with [analysis.Run]. A failed analysis aborts the rollout;
// an inconclusive one pauses or aborts it as [OnInconclusive] says.
func Analysis(checks ...analysis.Check) Step { return Step{Kind: KindAnalysis, Checks: checks} }

// String describes the step: "setWeight 50", "pause 30s", "analysis success-rate".
func (s Step) String() string {
	switch s.Kind {
	case KindSetWeight:
		return fmt.Sprintf("setWeight %d", s.Weight)
	case KindSetHeaderMatch:
		return fmt.Sprintf("setHeaderMatch %s=%s", s.Header, s.Value)
	case KindPause:
		return "pause " + s.Duration.String()
	case KindPauseUntilPromoted:
		return "pause until promoted"
	case KindAnalysis:
		names := make([]string, len(s.Checks))
		for i, c := range s.Checks {
			names[i] = c.Name
		}
		return "analysis " + strings.Join(names, ",")
	}
	return string(s.Kind)
}

// ErrInvalid is wrapped by the errors about a rollout that cannot run as given: bad
// steps, missing objects, a router whose resources are not installed. Nothing has moved
// when Run returns it.
var ErrInvalid = errors.New("invalid rollout")

// validateSteps checks the plan of a canary: weights within 0–100 and increasing,
// pauses with a duration, analyses with checks, and an end in full promotion (a last
// weight of 100, or a final PauseUntilPromoted).
func validateSteps(steps []Step) error {
	if len(steps) == 0 {
		return errors.New("no steps")
	}
	var errs []error
	last := int32(-1)
	for i, s := range steps {
		at := fmt.Sprintf("step %d (%s)", i+1, s)
		switch s.Kind {
		case KindSetWeight:
			switch {
			case s.Weight < 0 || s.Weight > 100:
				errs = append(errs, fmt.Errorf("%s: weight %d is outside 0–100", at, s.Weight))
			case s.Weight <= last:
				errs = append(errs, fmt.Errorf("%s: weight %d does not increase on the previous %d", at, s.Weight, last))
			default:
				last = s.Weight
			}
		case KindSetHeaderMatch:
			if err := mesh.ValidateHeader(s.Header, s.Value); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", at, err))
			}
		case KindPause:
			if s.Duration <= 0 {
				errs = append(errs, fmt.Errorf("%s: duration %v must be positive (use PauseUntilPromoted to wait for a person)", at, s.Duration))
			}
		case KindPauseUntilPromoted:
		case KindAnalysis:
			if len(s.Checks) == 0 {
				errs = append(errs, fmt.Errorf("%s: no checks", at))
			}
			for _, c := range s.Checks {
				if c.Provider == nil || c.Query == "" {
					errs = append(errs, fmt.Errorf("%s: check %q needs a provider and a query", at, c.Name))
				}
			}
		default:
			errs = append(errs, fmt.Errorf("step %d: unknown kind %q", i+1, s.Kind))
		}
	}
	if last < 100 && steps[len(steps)-1].Kind != KindPauseUntilPromoted {
		errs = append(errs, fmt.Errorf("steps end with the canary at %d%% and no promotion: end with SetWeight(100) or PauseUntilPromoted()", max(last, 0)))
	}
	return errors.Join(errs...)
}
