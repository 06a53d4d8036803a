package rollout_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/shipkit/shipkit/deploy/rollout"
)

// editState rewrites the recorded Status of the rollout "web" in namespace as edit
// says, keeping the rest of the ConfigMap (its seal too), as anyone who may write
// ConfigMaps there can.
func editState(t *testing.T, c kubernetes.Interface, namespace string, edit func(st map[string]any, data map[string]string)) {
	t.Helper()
	cm, err := c.CoreV1().ConfigMaps(namespace).Get(t.Context(), "web-rollout", metav1.GetOptions{})
	require.NoError(t, err)
	var st map[string]any
	require.NoError(t, json.Unmarshal([]byte(cm.Data["state"]), &st))
	edit(st, cm.Data)
	raw, err := json.Marshal(st)
	require.NoError(t, err)
	cm.Data["state"] = string(raw)
	_, err = c.CoreV1().ConfigMaps(namespace).Update(t.Context(), cm, metav1.UpdateOptions{})
	require.NoError(t, err)
}

// promoting is the forger's edit: the rollout says it passed every step.
func promoting(steps int) func(map[string]any, map[string]string) {
	return func(st map[string]any, _ map[string]string) {
		st["phase"], st["step"] = string(rollout.Promoting), steps
	}
}

func TestStateKeyRequired(t *testing.T) {
	spec := rollout.Canary{Name: "web", Namespace: ns, StableSelector: stableLabels, CanarySelector: canaryLabels,
		Router: &recordingRouter{}, Steps: []rollout.Step{rollout.SetWeight(100)}}
	for name, opts := range map[string][]rollout.Option{
		"no key":    nil,
		"short key": {rollout.WithStateKey(stateKey[:31])},
	} {
		_, err := rollout.NewCanaryWithClient(fake.NewClientset(), spec, opts...)
		require.ErrorIs(t, err, rollout.ErrInvalid, name)
		assert.ErrorContains(t, err, "WithStateKey: key shorter than 32 bytes", name)
	}
}

// A state edited to Promoting (keeping its seal) is refused before anything moves;
// ReadStatus, which has no key, still shows it, and Retry forgets it so the next
// Run starts the revision from its first step.
func TestRunRefusesEditedState(t *testing.T) {
	c := fakeCluster()
	router := &recordingRouter{}
	steps := []rollout.Step{rollout.SetWeight(10), rollout.PauseUntilPromoted(), rollout.Analysis(successRate(constant(1))), rollout.SetWeight(100)}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		waitForStep(t, newCanary(t, c, router, steps), 1)
		cancel()
	}()
	_, err := newCanary(t, c, router, steps).Run(ctx)
	require.ErrorIs(t, err, context.Canceled)
	editState(t, c, ns, promoting(len(steps)))
	before := router.Calls()

	r := newCanary(t, c, router, steps)
	_, err = r.Run(t.Context())
	var bad *rollout.StateError
	require.ErrorAs(t, err, &bad)
	assert.ErrorIs(t, err, rollout.ErrStateTampered)
	assert.Equal(t, "web-rollout", bad.Name)
	assert.Contains(t, err.Error(), "ConfigMap/"+ns+"/web-rollout")
	assert.Equal(t, before, router.Calls(), "no traffic moved")
	assert.Equal(t, "web:v1", image(t, c, ns, "web"), "not promoted")
	_, err = r.Status(t.Context())
	require.ErrorIs(t, err, rollout.ErrStateTampered, "Status verifies")
	shown, err := rollout.ReadStatus(t.Context(), c, ns, "web")
	require.NoError(t, err, "ReadStatus shows what is there, unverified")
	assert.Equal(t, rollout.Promoting, shown.Phase)

	require.NoError(t, r.Retry(t.Context()))
	go func() {
		waitForStep(t, r, 1)
		assert.NoError(t, r.Promote(context.Background()))
	}()
	res, err := r.Run(t.Context())
	require.NoError(t, err)
	assert.False(t, res.Resumed, "started again from the first step")
	assert.Equal(t, rollout.Promoted, res.Phase)
	require.Len(t, res.Steps, 4, "every step ran, the analysis too")
}

// A state without a seal (written by a version of shipkit that did not seal it) is
// refused with a message that says what to do.
func TestRunRefusesUnsealedState(t *testing.T) {
	c := fakeCluster()
	router := &recordingRouter{}
	steps := []rollout.Step{rollout.SetWeight(10), rollout.PauseUntilPromoted(), rollout.SetWeight(100)}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		waitForStep(t, newCanary(t, c, router, steps), 1)
		cancel()
	}()
	_, err := newCanary(t, c, router, steps).Run(ctx)
	require.ErrorIs(t, err, context.Canceled)
	editState(t, c, ns, func(_ map[string]any, data map[string]string) { delete(data, "seal") })
	_, err = newCanary(t, c, router, steps).Run(t.Context())
	require.ErrorIs(t, err, rollout.ErrStateTampered)
	assert.Contains(t, err.Error(), "has no seal")
	assert.Contains(t, err.Error(), "Retry")

	// Another key (rotated) is refused the same way.
	_, err = newCanary(t, c, router, steps, rollout.WithStateKey([]byte(strings.Repeat("r", 32)))).Run(t.Context())
	require.ErrorIs(t, err, rollout.ErrStateTampered)
}

// The plan gained an analysis step that the recorded state never passed: the run
// resumes, but promotion is refused with a *NotAnalysedError and stable is left as
// it was.
func TestRunNeverPromotesPastUnpassedAnalysis(t *testing.T) {
	c := fakeCluster()
	router := &recordingRouter{}
	before := []rollout.Step{rollout.SetWeight(10), rollout.SetWeight(20), rollout.PauseUntilPromoted(), rollout.SetWeight(100)}
	after := []rollout.Step{rollout.SetWeight(10), rollout.Analysis(successRate(constant(1))), rollout.PauseUntilPromoted(), rollout.SetWeight(100)}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		waitForStep(t, newCanary(t, c, router, before), 2)
		cancel()
	}()
	_, err := newCanary(t, c, router, before).Run(ctx)
	require.ErrorIs(t, err, context.Canceled)

	r := newCanary(t, c, router, after, rollout.WithIdentity("process-2"))
	go func() {
		waitForHolder(t, r, "process-2")
		assert.NoError(t, r.Promote(context.Background()))
	}()
	res, err := r.Run(t.Context())
	var na *rollout.NotAnalysedError
	require.ErrorAs(t, err, &na)
	assert.Equal(t, []int{2}, na.Steps)
	assert.True(t, res.Resumed)
	assert.Equal(t, "web:v1", image(t, c, ns, "web"), "not promoted")
}

// waitForHolder waits until the process id runs the rollout (has recorded it).
func waitForHolder(t *testing.T, r *rollout.CanaryRollout, id string) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		st, err := r.Status(context.Background())
		require.NoError(c, err)
		require.NotNil(c, st)
		assert.Equal(c, id, st.Holder)
	}, 10*time.Second, 5*time.Millisecond)
}

// An abort request wins over a recorded promotion that has not happened yet.
func TestAbortRequestWinsOverPromoting(t *testing.T) {
	c := fakeCluster()
	var failStable atomic.Bool
	failStable.Store(true)
	c.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if u, ok := a.(k8stesting.UpdateAction); ok && failStable.Load() {
			if m, err := meta.Accessor(u.GetObject()); err == nil && m.GetName() == "web" {
				return true, nil, errors.New("the API server went away")
			}
		}
		return false, nil, nil
	})
	router := &recordingRouter{}
	steps := []rollout.Step{rollout.SetWeight(10), rollout.SetWeight(100)}
	r := newCanary(t, c, router, steps)
	_, err := r.Run(t.Context())
	require.ErrorContains(t, err, "the API server went away")
	st, err := r.Status(t.Context())
	require.NoError(t, err)
	require.Equal(t, rollout.Promoting, st.Phase, "the process stopped with Promoting recorded")
	failStable.Store(false)

	require.NoError(t, r.Abort(t.Context(), "users complain"))
	res, err := newCanary(t, c, router, steps).Run(t.Context())
	require.NoError(t, err)
	assert.Equal(t, rollout.Aborted, res.Phase)
	assert.Equal(t, "users complain", res.Message)
	assert.Equal(t, "web:v1", image(t, c, ns, "web"), "not promoted")
}

// A promote request ends pauses only: sent during a pause and again during a
// failing analysis, it never gets the canary past the analysis.
func TestPromoteRequestNeverSkipsAnalysis(t *testing.T) {
	c := fakeCluster()
	router := &recordingRouter{}
	slow := successRate(constant(0.5))
	slow.Count, slow.Interval = 5, 50*time.Millisecond
	steps := []rollout.Step{rollout.SetWeight(10), rollout.Pause(time.Hour), rollout.Analysis(slow), rollout.SetWeight(100)}
	r := newCanary(t, c, router, steps)
	go func() {
		waitForStep(t, r, 1)
		assert.NoError(t, r.Promote(context.Background()))
		waitForStep(t, r, 2)
		assert.NoError(t, r.Promote(context.Background()))
	}()
	res, err := r.Run(t.Context())
	require.NoError(t, err)
	assert.Equal(t, rollout.Aborted, res.Phase)
	assert.Contains(t, res.Message, "step 3 analysis failed")
	assert.Equal(t, "web:v1", image(t, c, ns, "web"))
	assert.Equal(t, 10, router.maxWeight())
}
