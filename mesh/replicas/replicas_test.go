package replicas_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/mesh"
	"github.com/shipkit/shipkit/mesh/replicas"
)

var cluster = testbed.Lazy[*kube.Cluster]{Start: kube.Start}

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.Stop()
	os.Exit(code)
}

type env struct {
	c  *kube.Cluster
	ns string
}

func setup(t testing.TB) *env {
	t.Helper()
	c := cluster.Get(t)
	return &env{c: c, ns: c.NewNamespace(t)}
}

func (e *env) deployment(t testing.TB, name string, n int32, labels map[string]string) {
	t.Helper()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(n),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example/web:1"}}},
			},
		},
	}
	_, err := e.c.Clientset().AppsV1().Deployments(e.ns).Create(t.Context(), d, metav1.CreateOptions{})
	require.NoError(t, err)
}

func (e *env) service(t testing.TB, name string, selector map[string]string) {
	t.Helper()
	_, err := e.c.Clientset().CoreV1().Services(e.ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{Selector: selector, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// web is a Service over a stable Deployment with 10 replicas and a canary one with none.
func (e *env) web(t testing.TB) {
	t.Helper()
	e.deployment(t, "web", 10, map[string]string{"app": "web", "track": "stable"})
	e.deployment(t, "web-canary", 0, map[string]string{"app": "web", "track": "canary"})
	e.service(t, "web", map[string]string{"app": "web"})
}

func (e *env) router(t testing.TB, opts ...replicas.Option) *replicas.Router {
	t.Helper()
	r, err := replicas.New(e.c.RESTConfig(), replicas.Workload{Namespace: e.ns, Service: "web", Stable: "web", Canary: "web-canary"}, opts...)
	require.NoError(t, err)
	return r
}

func (e *env) get(t testing.TB, name string) *appsv1.Deployment {
	t.Helper()
	d, err := e.c.Clientset().AppsV1().Deployments(e.ns).Get(t.Context(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return d
}

// readyEndpoints counts the Service's ready endpoints by the track label of their pods.
func (e *env) readyEndpoints(ctx context.Context, service string) (map[string]int, error) {
	cs := e.c.Clientset()
	slices, err := cs.DiscoveryV1().EndpointSlices(e.ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + service})
	if err != nil {
		return nil, err
	}
	n := map[string]int{}
	for _, s := range slices.Items {
		for _, ep := range s.Endpoints {
			if !ptr.Deref(ep.Conditions.Ready, false) || ep.TargetRef == nil {
				continue
			}
			pod, err := cs.CoreV1().Pods(e.ns).Get(ctx, ep.TargetRef.Name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			n[pod.Labels["track"]]++
		}
	}
	return n, nil
}

func TestSetWeight(t *testing.T) {
	e := setup(t)
	e.web(t)
	r := e.router(t)
	ctx := t.Context()
	for _, tc := range []struct{ weight, stable, canary int32 }{
		{0, 10, 0}, {10, 9, 1}, {50, 5, 5}, {100, 0, 10}, {0, 10, 0},
	} {
		require.NoError(t, r.SetWeight(ctx, tc.weight))
		stable, canary := e.get(t, "web"), e.get(t, "web-canary")
		assert.Equal(t, tc.stable, *stable.Spec.Replicas, "stable at weight %d", tc.weight)
		assert.Equal(t, tc.canary, *canary.Spec.Replicas, "canary at weight %d", tc.weight)
		got, err := r.Weight(ctx)
		require.NoError(t, err)
		assert.Equal(t, tc.weight, got)

		require.NoError(t, r.SetWeight(ctx, tc.weight))
		// The controllers update status, so compare the spec's generation.
		assert.Equal(t, stable.Generation, e.get(t, "web").Generation, "SetWeight(%d) twice", tc.weight)
		assert.Equal(t, canary.Generation, e.get(t, "web-canary").Generation, "SetWeight(%d) twice", tc.weight)
	}
	assert.ErrorContains(t, r.SetWeight(ctx, 101), "outside 0-100")

	// The Service's ready endpoints follow: at 30% three of ten pods are the canary's.
	require.NoError(t, r.SetWeight(ctx, 30))
	var eps map[string]int
	assert.Eventually(t, func() bool {
		var err error
		eps, err = e.readyEndpoints(ctx, "web")
		return err == nil && eps["stable"] == 7 && eps["canary"] == 3
	}, time.Minute, 200*time.Millisecond, "ready endpoints by track: %v", eps)

	require.NoError(t, r.Reset(ctx))
	assert.Equal(t, int32(0), *e.get(t, "web-canary").Spec.Replicas)
	assert.Equal(t, int32(10), *e.get(t, "web").Spec.Replicas)

	err := r.SetHeaderMatch(ctx, "x-canary", "1")
	assert.ErrorIs(t, err, mesh.ErrUnsupported)
}

// The canary is scaled before the stable Deployment both ways, so its share of pods
// stays at or below the new weight on the way up and falls at once on the way down.
func TestCanaryScaledFirst(t *testing.T) {
	e := setup(t)
	e.web(t)
	r := e.router(t)
	ctx := t.Context()
	for _, w := range []int32{40, 10} {
		order := e.watchScaling(t, func() { require.NoError(t, r.SetWeight(ctx, w)) })
		assert.Equal(t, []string{"web-canary", "web"}, order, "scaling to weight %d", w)
	}
}

// watchScaling returns the Deployments whose replicas changed while fn ran, in order.
func (e *env) watchScaling(t *testing.T, fn func()) []string {
	t.Helper()
	list, err := e.c.Clientset().AppsV1().Deployments(e.ns).List(t.Context(), metav1.ListOptions{})
	require.NoError(t, err)
	last := map[string]int32{}
	for _, d := range list.Items {
		last[d.Name] = *d.Spec.Replicas
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	w, err := e.c.Clientset().AppsV1().Deployments(e.ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	require.NoError(t, err)
	defer w.Stop()
	fn()
	var order []string
	for len(order) < 2 {
		select {
		case ev := <-w.ResultChan():
			d, ok := ev.Object.(*appsv1.Deployment)
			if !ok || ev.Type != watch.Modified {
				continue
			}
			if *d.Spec.Replicas != last[d.Name] {
				last[d.Name] = *d.Spec.Replicas
				order = append(order, d.Name)
			}
		case <-ctx.Done():
			t.Fatalf("saw only %v scale", order)
		}
	}
	return order
}

func TestTotal(t *testing.T) {
	e := setup(t)
	e.web(t)
	r := e.router(t, replicas.WithTotal(4))
	require.NoError(t, r.SetWeight(t.Context(), 10))
	assert.Equal(t, int32(4), *e.get(t, "web").Spec.Replicas)
	assert.Equal(t, int32(0), *e.get(t, "web-canary").Spec.Replicas, "one canary replica of four would be 25%, more than 10%")
	require.NoError(t, r.SetWeight(t.Context(), 25))
	assert.Equal(t, int32(3), *e.get(t, "web").Spec.Replicas)
	assert.Equal(t, int32(1), *e.get(t, "web-canary").Spec.Replicas)
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, e *env)
		want  string
	}{
		{"missing canary", func(t *testing.T, e *env) {
			e.deployment(t, "web", 2, map[string]string{"app": "web", "track": "stable"})
			e.service(t, "web", map[string]string{"app": "web"})
		}, "Deployment %s/web-canary: not found"},
		{"missing service", func(t *testing.T, e *env) {
			e.deployment(t, "web", 2, map[string]string{"app": "web", "track": "stable"})
			e.deployment(t, "web-canary", 0, map[string]string{"app": "web", "track": "canary"})
		}, "Service %s/web: not found"},
		{"service misses the canary", func(t *testing.T, e *env) {
			e.deployment(t, "web", 2, map[string]string{"app": "web", "track": "stable"})
			e.deployment(t, "web-canary", 0, map[string]string{"app": "web-next", "track": "canary"})
			e.service(t, "web", map[string]string{"app": "web"})
		}, `Service %s/web: selector "app=web" does not select the pods of Deployment web-canary`},
		{"overlapping selectors", func(t *testing.T, e *env) {
			e.deployment(t, "web", 2, map[string]string{"app": "web"})
			e.deployment(t, "web-canary", 0, map[string]string{"app": "web", "track": "canary"})
			e.service(t, "web", map[string]string{"app": "web"})
		}, `Deployment %s/web: selector "app=web" also selects the pods of Deployment web-canary`},
		{"no replicas", func(t *testing.T, e *env) {
			e.deployment(t, "web", 0, map[string]string{"app": "web", "track": "stable"})
			e.deployment(t, "web-canary", 0, map[string]string{"app": "web", "track": "canary"})
			e.service(t, "web", map[string]string{"app": "web"})
		}, "no replicas to share"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			tc.setup(t, e)
			r := e.router(t)
			err := r.Check(t.Context())
			require.ErrorIs(t, err, mesh.ErrPrerequisite)
			want := tc.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, e.ns)
			}
			assert.ErrorContains(t, err, want)

			before, err := e.c.Clientset().AppsV1().Deployments(e.ns).List(t.Context(), metav1.ListOptions{})
			require.NoError(t, err)
			assert.ErrorIs(t, r.SetWeight(t.Context(), 50), mesh.ErrPrerequisite)
			after, err := e.c.Clientset().AppsV1().Deployments(e.ns).List(t.Context(), metav1.ListOptions{})
			require.NoError(t, err)
			for i := range after.Items {
				assert.Equal(t, *before.Items[i].Spec.Replicas, *after.Items[i].Spec.Replicas, "a router that fails its check scales nothing")
			}
		})
	}
}

// BenchmarkSetWeight measures one weight change on the real API server (read both
// Deployments, apply both replica counts).
func BenchmarkSetWeight(b *testing.B) {
	e := setup(b)
	e.web(b)
	r := e.router(b)
	require.NoError(b, r.Check(b.Context()))
	weights := [2]int32{10, 50}
	for i := 0; b.Loop(); i++ {
		if err := r.SetWeight(b.Context(), weights[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}
