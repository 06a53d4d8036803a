package rollout_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/shipkit/shipkit/deploy/rollout"
)

// configMapWriter returns a client for a user who may read and write ConfigMaps in
// the env's namespace and nothing else: the forger of a rollout state.
func (e *env) configMapWriter(t *testing.T) kubernetes.Interface {
	t.Helper()
	ctx := t.Context()
	rbac := e.client.RbacV1()
	_, err := rbac.Roles(e.ns).Apply(ctx, rbacv1ac.Role("cm-writer", e.ns).WithRules(
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("configmaps").WithVerbs("get", "list", "update", "patch")),
		metav1.ApplyOptions{FieldManager: "test"})
	require.NoError(t, err)
	_, err = rbac.RoleBindings(e.ns).Apply(ctx, rbacv1ac.RoleBinding("cm-writer", e.ns).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup("rbac.authorization.k8s.io").WithKind("Role").WithName("cm-writer")).
		WithSubjects(rbacv1ac.Subject().WithKind("User").WithName("mallory")), metav1.ApplyOptions{FieldManager: "test"})
	require.NoError(t, err)
	cfg := e.cluster.RESTConfig()
	cfg.Impersonate.UserName = "mallory"
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	_, err = client.AppsV1().Deployments(e.ns).List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "mallory may not touch Deployments herself: %v", err)
	return client
}

// pausedBeforeAnalysis runs the plan 10% → pause until promoted → analysis → 100%
// until it waits at the pause, and stops that run (the process goes away); the state
// says step 2, before the analysis.
func (e *env) pausedBeforeAnalysis(t *testing.T) []rollout.Step {
	t.Helper()
	steps := []rollout.Step{rollout.SetWeight(10), rollout.PauseUntilPromoted(), rollout.Analysis(e.successRate(3)), rollout.SetWeight(100)}
	ctx, stop := context.WithCancel(t.Context())
	first := e.canary(t, steps, rollout.WithIdentity("process-1"))
	go func() {
		waitFor(t, time.Minute, func(c *assert.CollectT) {
			st, err := first.Status(t.Context())
			require.NoError(c, err)
			require.NotNil(c, st)
			assert.Equal(c, 1, st.Step)
		})
		stop()
	}()
	_, err := first.Run(ctx)
	require.ErrorIs(t, err, context.Canceled)
	return steps
}

// assertNotPromoted checks that stable still runs v1 and the router was asked for
// nothing after the weights in before.
func (e *env) assertNotPromoted(t *testing.T, before []int, live int) {
	t.Helper()
	assert.Equal(t, "registry.example/web:v1", image(t, e.client, e.ns, "web"), "stable was not promoted")
	assert.Equal(t, before, e.router.weights(), "no traffic moved")
	assert.Equal(t, live, e.router.live(t), "the canary keeps its share")
}

// A user who may only write ConfigMaps in the namespace edits the state of a canary
// that waits before its analysis to say Promoting, past every step: the next Run
// refuses the state (*StateError naming the ConfigMap), promotes nothing and moves
// no traffic.
func TestCanaryForgedPromotingStateRefused(t *testing.T) {
	e := newEnv(t)
	steps := e.pausedBeforeAnalysis(t)
	weights := e.router.weights()
	require.Equal(t, 10, e.router.live(t))
	editState(t, e.configMapWriter(t), e.ns, promoting(len(steps)))

	r := e.canary(t, steps, rollout.WithIdentity("process-2"))
	res, err := r.Run(t.Context())
	var bad *rollout.StateError
	require.ErrorAs(t, err, &bad, "%v", res)
	assert.ErrorIs(t, err, rollout.ErrStateTampered)
	assert.Equal(t, e.ns, bad.Namespace)
	assert.Equal(t, "web-rollout", bad.Name)
	t.Log(err)
	e.assertNotPromoted(t, weights, 10)
}

// A canary that was aborted, whose state is then edited to Promoting, stays aborted.
func TestCanaryAbortedStateEditedToPromotingRefused(t *testing.T) {
	e := newEnv(t)
	steps := []rollout.Step{rollout.SetWeight(10), rollout.PauseUntilPromoted(), rollout.Analysis(e.successRate(3)), rollout.SetWeight(100)}
	r := e.canary(t, steps)
	go func() {
		waitFor(t, time.Minute, func(c *assert.CollectT) {
			st, err := r.Status(t.Context())
			require.NoError(c, err)
			require.NotNil(c, st)
			assert.Equal(c, 1, st.Step)
		})
		assert.NoError(t, r.Abort(context.Background(), "users complain"))
	}()
	res, err := r.Run(t.Context())
	require.NoError(t, err)
	require.Equal(t, rollout.Aborted, res.Phase)
	weights := e.router.weights()
	editState(t, e.configMapWriter(t), e.ns, promoting(len(steps)))

	_, err = e.canary(t, steps).Run(t.Context())
	require.ErrorIs(t, err, rollout.ErrStateTampered)
	e.assertNotPromoted(t, weights, 0)
	assert.Equal(t, int32(0), replicasOf(t, e.client, e.ns, "web-canary"), "the canary stays scaled down")
}

// The canary's template changes after its analysis passed (a new image applied
// while the rollout waits for promotion): promotion is refused with a
// *TemplateChangedError, stable keeps v1 and the rollout is aborted.
func TestCanaryTemplateChangedAfterAnalysisNotPromoted(t *testing.T) {
	e := newEnv(t)
	steps := []rollout.Step{rollout.SetWeight(10), rollout.Analysis(e.successRate(2)), rollout.PauseUntilPromoted()}
	r := e.canary(t, steps)
	analysed := make(chan string, 1)
	go func() {
		var rev string
		waitFor(t, time.Minute, func(c *assert.CollectT) {
			st, err := r.Status(t.Context())
			require.NoError(c, err)
			require.NotNil(c, st)
			require.Equal(c, 2, st.Step, "the analysis passed, the rollout waits for promotion")
			rev = st.Revision
		})
		analysed <- rev
		d, err := e.client.AppsV1().Deployments(e.ns).Get(context.Background(), "web-canary", metav1.GetOptions{})
		if !assert.NoError(t, err) {
			return
		}
		d.Spec.Template.Spec.Containers[0].Image = "registry.example/web:v3-unanalysed"
		_, err = e.client.AppsV1().Deployments(e.ns).Update(context.Background(), d, metav1.UpdateOptions{})
		assert.NoError(t, err)
		assert.NoError(t, r.Promote(context.Background()))
	}()
	res, err := r.Run(t.Context())
	var changed *rollout.TemplateChangedError
	require.ErrorAs(t, err, &changed, "%v", res)
	t.Log(err)
	assert.Equal(t, <-analysed, changed.Analysed)
	assert.NotEqual(t, changed.Analysed, changed.Live)
	assert.Equal(t, "web-canary", changed.Deployment)
	assert.Equal(t, rollout.Aborted, res.Phase)
	assert.Equal(t, "registry.example/web:v1", image(t, e.client, e.ns, "web"), "stable was not promoted")
	assert.Equal(t, 0, e.router.live(t), "all traffic back on stable")
}
