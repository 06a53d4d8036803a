package otel_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/mesh/replicas"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/observe/analysis"
	shipotel "github.com/shipkit/shipkit/observe/otel"
)

// cluster is the control plane of the rollout test, started on first use.
var cluster = testbed.Lazy[*kube.Cluster]{Start: kube.Start}

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.Stop()
	os.Exit(code)
}

// canaryIn creates, in a new namespace, a ready stable Deployment "web" (v1, 4
// replicas), a canary "web-canary" (v2, 0 replicas) and a Service over both, and
// returns a canary rollout of them through mesh/replicas's router whose one analysis
// step asks a metrics provider that answers successRate.
func canaryIn(t *testing.T, cl *kube.Cluster, successRate float64, obs observe.Observer) *rollout.CanaryRollout {
	t.Helper()
	ctx := t.Context()
	client := cl.Clientset()
	ns := cl.NewNamespace(t)
	for _, d := range []struct {
		name, track, image string
		n                  int32
	}{{"web", "stable", "registry.example/web:v1", 4}, {"web-canary", "canary", "registry.example/web:v2", 0}} {
		labels := map[string]string{"app": "web", "track": d.track}
		_, err := client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: d.name, Namespace: ns, Labels: labels},
			Spec: appsv1.DeploymentSpec{Replicas: &d.n, Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: d.image}}}}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	_, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	router, err := replicas.New(cl.RESTConfig(), replicas.Workload{Namespace: ns, Service: "web", Stable: "web", Canary: "web-canary"},
		replicas.WithTotal(4))
	require.NoError(t, err)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		require.NoError(c, err)
		assert.Equal(c, int32(4), d.Status.AvailableReplicas)
	}, 90*time.Second, 100*time.Millisecond)

	metrics := observe.ProviderFunc(func(context.Context, string) (float64, error) { return successRate, nil })
	r, err := rollout.NewCanaryWithClient(client, rollout.Canary{
		Name: "web", Namespace: ns,
		StableSelector: map[string]string{"app": "web", "track": "stable"},
		CanarySelector: map[string]string{"app": "web", "track": "canary"},
		Router:         router, Services: []string{"web"},
		Steps: []rollout.Step{
			rollout.SetWeight(50),
			rollout.Analysis(analysis.Check{Name: "success-rate", Provider: metrics, Query: "success_rate",
				Success: analysis.AtLeast(0.95)}),
			rollout.SetWeight(100),
		},
	}, rollout.WithObserver(obs), rollout.WithPollInterval(100*time.Millisecond),
		rollout.WithReadyTimeout(90*time.Second), rollout.WithLeaseDuration(5*time.Second),
		rollout.WithStateKey([]byte("test state key, 32 bytes or more")))
	require.NoError(t, err)
	return r
}

// TestRolloutTrace runs two canaries on the test control plane (kwok nodes, so
// the Deployments really become ready) with one Observer: a healthy one, promoted,
// and one whose analysis fails, aborted. Each rollout step becomes a span under a
// rollout stage span, the analysis check a span of the analysis stage; the failed
// analysis and its step are Error with the check's verdict, the abort that follows
// is a span of its own, and the promote of the healthy canary is Ok.
func TestRolloutTrace(t *testing.T) {
	cl := cluster.Get(t)
	var rec *tracetest.SpanRecorder
	run := func(successRate float64) ([]string, *rollout.Result) {
		t.Helper()
		var tp *sdktrace.TracerProvider
		tp, rec = newTracing(t)
		ctx, root := tp.Tracer("test").Start(t.Context(), "release")
		obs := shipotel.New(ctx, tp)
		res, err := canaryIn(t, cl, successRate, obs).Run(ctx)
		require.NoError(t, err)
		obs.Close()
		root.End()
		return tree(rec.Ended()), res
	}
	step := func(i int, s string) string { return fmt.Sprintf("step %d/3 %s", i, s) }

	paths, res := run(0.99)
	require.Equal(t, rollout.Promoted, res.Phase, res.Message)
	for _, want := range []string{
		"release > rollout [Ok]",
		"release > rollout > " + step(1, "setWeight 50") + " [Ok]",
		"release > rollout > " + step(2, "analysis success-rate") + " [Ok]",
		"release > rollout > " + step(3, "setWeight 100") + " [Ok]",
		"release > rollout > promote [Ok]",
		"release > analysis [Ok]",
		"release > analysis > success-rate [Ok]",
	} {
		assert.Contains(t, paths, want)
	}
	healthy := rec.Ended()
	weight := find(t, healthy, step(1, "setWeight 50"))
	assert.Contains(t, weight.Attributes(), shipotel.AttrStage.String(rollout.Stage))
	check := find(t, healthy, "success-rate")
	assert.NotEmpty(t, check.Events(), "each measurement is a progress event")

	paths, res = run(0.5)
	require.Equal(t, rollout.Aborted, res.Phase, res.Message)
	for _, want := range []string{
		"release > rollout [Error]",
		"release > rollout > " + step(1, "setWeight 50") + " [Ok]",
		"release > rollout > " + step(2, "analysis success-rate") + " [Error]",
		"release > rollout > abort [Ok]",
		"release > analysis [Error]",
		"release > analysis > success-rate [Error]",
	} {
		assert.Contains(t, paths, want)
	}
	for _, p := range paths {
		assert.NotContains(t, p, "setWeight 100", "an aborted canary never gets all traffic")
		assert.NotContains(t, p, "promote")
	}
	failed := find(t, rec.Ended(), "success-rate")
	assert.Contains(t, failed.Status().Description, `check "success-rate" Failed`)
	stage := find(t, rec.Ended(), rollout.Stage)
	assert.Contains(t, stage.Status().Description, step(2, "analysis success-rate"))
}

// TestApplyTrace applies a ConfigMap and a Deployment with deploy/apply on the test
// control plane and waits for them, then applies a ConfigMap the API server refuses:
// the deploy stage has an apply span (a progress event per object) and a wait span,
// both Ok, then an apply span that is Error with the server's answer.
func TestApplyTrace(t *testing.T) {
	cl := cluster.Get(t)
	ns := cl.NewNamespace(t)
	tp, rec := newTracing(t)
	ctx, root := tp.Tracer("test").Start(t.Context(), "release")
	obs := shipotel.New(ctx, tp)
	m, err := apply.New(cl.RESTConfig(), apply.Options{Namespace: ns, Wait: 90 * time.Second, Observer: obs})
	require.NoError(t, err)
	objs := []*unstructured.Unstructured{
		{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "web-config"}, "data": map[string]any{"greeting": "hello"}}},
		{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": "web"},
			"spec": map[string]any{"replicas": int64(1),
				"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
				"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
					"spec": map[string]any{"containers": []any{map[string]any{"name": "web", "image": "registry.example/web:v1"}}}}}}},
	}
	_, err = m.Apply(ctx, objs)
	require.NoError(t, err)
	_, err = m.Apply(ctx, []*unstructured.Unstructured{{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "web-config"}, "data": map[string]any{"not a valid key!": "x"}}}})
	require.Error(t, err)
	obs.Close()
	root.End()

	spans := rec.Ended()
	paths := tree(spans)
	for _, want := range []string{
		"release > deploy [Error]",
		"release > deploy > apply [Ok]",
		"release > deploy > wait [Ok]",
		"release > deploy > apply [Error]",
	} {
		assert.Contains(t, paths, want)
	}
	for _, s := range spans {
		if s.Name() != "apply" {
			continue
		}
		if s.Status().Code == codes.Ok {
			var progress int
			for _, e := range s.Events() {
				if e.Name == "progress" {
					progress++
				}
			}
			assert.Equal(t, 2, progress, "one progress event per object")
		} else {
			assert.Contains(t, s.Status().Description, "not a valid key!")
		}
	}
}
