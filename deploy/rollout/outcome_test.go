package rollout_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/deploy/rollout"
)

// outcome is what a canary rollout leaves in the cluster, without the times and
// identities that differ from run to run.
type outcome struct {
	Phase          rollout.Phase
	Step           int
	Weight         int32
	Steps          []string // index, step, weight and phase of each recorded step
	StableImage    string
	StableReplicas int32
	StableTrack    string
	CanaryReplicas int32
}

func (e *env) outcome(t *testing.T) outcome {
	t.Helper()
	st, err := rollout.ReadStatus(t.Context(), e.client, e.ns, "web")
	require.NoError(t, err)
	require.NotNil(t, st)
	stable, err := e.client.AppsV1().Deployments(e.ns).Get(t.Context(), "web", metav1.GetOptions{})
	require.NoError(t, err)
	o := outcome{Phase: st.Phase, Step: st.Step, Weight: st.Weight,
		StableImage: stable.Spec.Template.Spec.Containers[0].Image, StableReplicas: *stable.Spec.Replicas,
		StableTrack: stable.Spec.Template.Labels["track"], CanaryReplicas: replicasOf(t, e.client, e.ns, "web-canary")}
	for _, s := range st.Steps {
		o.Steps = append(o.Steps, fmt.Sprintf("%d %s %d%% %s", s.Index, s.Step, s.Weight, s.Phase))
	}
	return o
}

// promotedOutcome is the outcome of a canary promoted after running every step of
// plan once, on the env's Deployments.
func promotedOutcome(plan []rollout.Step) outcome {
	o := outcome{Phase: rollout.Promoted, Step: len(plan), StableImage: "registry.example/web:v2",
		StableReplicas: total, StableTrack: "stable"}
	var w int32
	for i, s := range plan {
		if s.Kind == rollout.KindSetWeight {
			w = s.Weight
		}
		o.Steps = append(o.Steps, fmt.Sprintf("%d %s %d%% %s", i, s, w, rollout.StepCompleted))
	}
	return o
}
