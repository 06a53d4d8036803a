package rollout

import (
	"fmt"
	"strings"
	"time"

	"github.com/shipkit/shipkit/observe/analysis"
)

// Phase is where a rollout is, as recorded in the cluster and returned in a [Result].
type Phase string

// The phases of a rollout.
const (
	// Progressing: steps are being run.
	Progressing Phase = "Progressing"
	// Paused: the rollout waits for a person (an inconclusive analysis under
	// [PauseOnInconclusive]); the next Run resumes from the recorded step.
	Paused Phase = "Paused"
	// Promoting: the new version is becoming stable (canary) or active (blue/green).
	Promoting Phase = "Promoting"
	// Promoted: the new version serves all traffic; the rollout is done.
	Promoted Phase = "Promoted"
	// Aborting: traffic is going back to the stable version.
	Aborting Phase = "Aborting"
	// Aborted: all traffic is on the stable version and the new one is scaled down.
	Aborted Phase = "Aborted"
)

// Done reports whether the phase is final for the recorded revision.
func (p Phase) Done() bool { return p == Promoted || p == Aborted }

// StepPhase says how one step ended.
type StepPhase string

// The phases of a step.
const (
	// StepCompleted: the step did what it says.
	StepCompleted StepPhase = "Completed"
	// StepFailed: the step's analysis failed, or its Deployment did not become ready.
	StepFailed StepPhase = "Failed"
	// StepInconclusive: the step's analysis had too little data to judge.
	StepInconclusive StepPhase = "Inconclusive"
	// StepInterrupted: the run stopped during the step (context cancelled, lease lost,
	// API server unreachable, abort requested); the next run resumes it.
	StepInterrupted StepPhase = "Interrupted"
)

// StepResult is what one step did.
type StepResult struct {
	// Index is the step's position in the plan, from 0.
	Index int
	// Step is the step as planned.
	Step Step
	// Weight is the canary's percent of traffic while the step ran.
	Weight int32
	// Phase says how the step ended.
	Phase StepPhase
	// Analysis holds the measurements of an Analysis step (nil for other kinds).
	Analysis *analysis.Result
	// Message explains the phase in one line.
	Message string
	// Started and Finished time the step.
	Started, Finished time.Time
}

// Duration is how long the step took.
func (s StepResult) Duration() time.Duration { return s.Finished.Sub(s.Started) }

// Decision is one choice the rollout made that moved traffic or versions: promote,
// abort, roll back, pause, resume.
type Decision struct {
	// Action is what was decided: "start", "resume", "pause", "promote" or "abort".
	Action string `json:"action"`
	// Reason says why, naming the step or check behind it.
	Reason string `json:"reason"`
	// Time is when the decision was made.
	Time time.Time `json:"time"`
}

// Result is the outcome of a run: every step it ran, with the measurements behind each
// decision. A run that ends in [Aborted] returns its Result with a nil error: an abort
// is a decision, not a failure to decide.
type Result struct {
	// Name is the rollout's name.
	Name string
	// Strategy is "canary" or "blueGreen".
	Strategy string
	// Revision identifies the new version (a hash of its pod template).
	Revision string
	// Phase is where the rollout is now.
	Phase Phase
	// Message explains the phase in one line.
	Message string
	// ResumedAt is the index of the step this run started at: 0 for a fresh rollout.
	// Resumed says whether the run found recorded state to continue from.
	ResumedAt int
	Resumed   bool
	// Steps holds one result per step this run ran, in order.
	Steps []StepResult
	// Background holds the measurements of background analysis, if any.
	Background []analysis.Measurement
	// Decisions lists promote, abort, pause and resume decisions in order.
	Decisions []Decision
	// Weight is the canary's percent of traffic when the run ended (0 once promoted or
	// aborted: all traffic on stable). Blue/green rollouts switch all traffic at once
	// and leave it 0.
	Weight int32
	// Started and Finished time the run.
	Started, Finished time.Time
}

// String prints the result one step a line.
func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rollout %s revision %s: %s", r.Name, r.Revision, r.Phase)
	if r.Message != "" {
		fmt.Fprintf(&b, " (%s)", r.Message)
	}
	b.WriteByte('\n')
	for _, s := range r.Steps {
		weight := fmt.Sprintf("weight %3d%%  ", s.Weight)
		if r.Strategy == strategyBlueGreen {
			weight = ""
		}
		fmt.Fprintf(&b, "  step %d %-28s %s%-12s %s", s.Index+1, s.Step, weight, s.Phase, s.Duration().Round(time.Millisecond))
		if s.Message != "" {
			fmt.Fprintf(&b, "  %s", s.Message)
		}
		b.WriteByte('\n')
	}
	for _, d := range r.Decisions {
		fmt.Fprintf(&b, "  decision %s: %s\n", d.Action, d.Reason)
	}
	return b.String()
}
