package rollout_test

import (
	"context"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/internal/testbed/prom"
	"github.com/shipkit/shipkit/mesh/replicas"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/observe/analysis"
	"github.com/shipkit/shipkit/observe/prometheus"
)

// The integration tests share one control plane (with kwok nodes, so Deployments
// really roll out) and one Prometheus, which scrapes each test's app.
var (
	cluster    = testbed.Lazy[*kube.Cluster]{Start: kube.Start}
	promServer = testbed.Lazy[*prom.Server]{Start: func() (*prom.Server, func(), error) {
		s, err := prom.Start(context.Background())
		if err != nil {
			return nil, nil, err
		}
		return s, s.Stop, nil
	}}
)

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.Stop()
	promServer.Stop()
	os.Exit(code)
}

// env is one test's namespace with a stable (v1) and a canary (v2) Deployment of
// "web", a Service over both, mesh/replicas's router, and the app whose per-version metrics Prometheus scrapes.
type env struct {
	cluster *kube.Cluster
	client  kubernetes.Interface
	ns      string
	app     *prom.App
	metrics observe.Provider
	router  *loggedRouter
}

const (
	threshold = 0.95
	window    = 5 * time.Second
	interval  = time.Second
)

func newEnv(t *testing.T) *env {
	t.Helper()
	cl := cluster.Get(t)
	srv := promServer.Get(t)
	e := &env{cluster: cl, client: cl.Clientset(), ns: cl.NewNamespace(t)}
	var err error
	e.app, err = prom.NewApp()
	require.NoError(t, err)
	t.Cleanup(e.app.Close)
	require.NoError(t, srv.SetTargets(t.Context(), e.app.Addr))
	e.metrics, err = prometheus.New(srv.URL, prometheus.WithTimeout(2*time.Second))
	require.NoError(t, err)

	stable := deployment("web", stableLabels, "registry.example/web:v1", total, false)
	stable.Spec.Template.Labels = map[string]string{"app": "web", "track": "stable", "version": "v1"}
	// The canary is the library's copy of the next release of stable (v2).
	release := stable.DeepCopy()
	release.Spec.Template.Spec.Containers[0].Image = "registry.example/web:v2"
	release.Spec.Template.Labels["version"] = "v2"
	canary, err := rollout.CanaryDeployment(release)
	require.NoError(t, err)
	require.Equal(t, "web-canary", canary.Name)
	require.Equal(t, canaryLabels, canary.Labels)
	canary.Spec.Replicas = new(int32) // the router gives it its share at the first step
	for _, d := range []*appsv1.Deployment{stable, canary} {
		d.Namespace = e.ns
		_, err := e.client.AppsV1().Deployments(e.ns).Create(t.Context(), d, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	svc := service("web", map[string]string{"app": "web"})
	svc.Namespace = e.ns
	svc.Spec.Ports = []corev1.ServicePort{{Port: 80}}
	_, err = e.client.CoreV1().Services(e.ns).Create(t.Context(), svc, metav1.CreateOptions{})
	require.NoError(t, err)
	e.router = newRouter(t, cl, e.ns)
	e.waitReady(t, "web")

	// Both versions serve steady, healthy traffic: the test changes the canary's
	// error rate, and the analysis must see exactly that.
	e.app.SetTraffic("v1", prom.Traffic{RPS: 100, Latency: 10 * time.Millisecond})
	e.app.SetTraffic("v2", prom.Traffic{RPS: 100, Latency: 10 * time.Millisecond})
	e.settle(t, 1)
	return e
}

// successRate is the canary's success rate (of this test's app) over a 5 s window, measured count times a
// second apart.
func (e *env) successRate(count int) analysis.Check {
	// The app's instance in the selector keeps out the series of earlier tests' apps,
	// which linger in the shared Prometheus for a window after their target is gone.
	sel := analysis.MatchLabels(map[string]string{"version": "v2", "instance": e.app.Addr})
	c := analysis.SuccessRate(e.metrics, sel, threshold, analysis.Window(window))
	c.Count, c.Interval = count, interval
	return c
}

// settle waits until Prometheus reports the canary's success rate as want.
func (e *env) settle(t *testing.T, want float64) {
	t.Helper()
	q := e.successRate(1).Query
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		v, err := e.metrics.Query(t.Context(), q)
		require.NoError(c, err)
		assert.InDelta(c, want, v, 0.02)
	}, 60*time.Second, 250*time.Millisecond)
}

func (e *env) waitReady(t *testing.T, name string) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		d, err := e.client.AppsV1().Deployments(e.ns).Get(t.Context(), name, metav1.GetOptions{})
		require.NoError(c, err)
		assert.Equal(c, d.Generation, d.Status.ObservedGeneration)
		assert.Equal(c, *d.Spec.Replicas, d.Status.AvailableReplicas)
		assert.Equal(c, *d.Spec.Replicas, d.Status.UpdatedReplicas)
	}, 60*time.Second, 100*time.Millisecond)
}

// canary returns the env's canary rollout.
func (e *env) canary(t *testing.T, steps []rollout.Step, opts ...rollout.Option) *rollout.CanaryRollout {
	t.Helper()
	r, err := rollout.NewCanaryWithClient(e.client, rollout.Canary{ // the killed test's child process has a client, no cluster
		Name: "web", Namespace: e.ns,
		StableSelector: stableLabels, CanarySelector: canaryLabels,
		Router: e.router, Services: []string{"web"}, Steps: steps,
	}, append([]rollout.Option{rollout.WithPollInterval(100 * time.Millisecond), rollout.WithReadyTimeout(time.Minute),
		rollout.WithLeaseDuration(3 * time.Second), rollout.WithStateKey(stateKey)}, opts...)...)
	require.NoError(t, err)
	return r
}

// assertPromoted checks, in the API server, what a promoted canary leaves: stable runs
// v2 and is ready, the canary has no replicas, all traffic is on stable, the recorded
// state says Promoted.
func (e *env) assertPromoted(t *testing.T, r *rollout.CanaryRollout) {
	t.Helper()
	stable, err := e.client.AppsV1().Deployments(e.ns).Get(t.Context(), "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "registry.example/web:v2", stable.Spec.Template.Spec.Containers[0].Image)
	assert.Equal(t, "stable", stable.Spec.Template.Labels["track"], "the promoted pods keep the stable selector's labels")
	e.waitReady(t, "web")
	assert.Equal(t, int32(total), *stable.Spec.Replicas)
	assert.Equal(t, 0, e.router.live(t), "all traffic on stable")
	st, err := r.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, rollout.Promoted, st.Phase)
}

// total is the number of replicas the stable and the canary Deployment share.
const total = 10

// loggedRouter is mesh/replicas's router, remembering every weight it was asked for;
// the split itself lives in the API server, as the Deployments' replicas.
type loggedRouter struct {
	*replicas.Router
	client kubernetes.Interface
	ns     string
	mu     sync.Mutex
	set    []int
}

func newRouter(t *testing.T, cl *kube.Cluster, ns string) *loggedRouter {
	t.Helper()
	r, err := replicas.New(cl.RESTConfig(), replicas.Workload{Namespace: ns, Service: "web", Stable: "web", Canary: "web-canary"},
		replicas.WithTotal(total))
	require.NoError(t, err)
	return &loggedRouter{Router: r, client: cl.Clientset(), ns: ns}
}

func (r *loggedRouter) SetWeight(ctx context.Context, w int32) error {
	r.mu.Lock()
	r.set = append(r.set, int(w))
	r.mu.Unlock()
	return r.Router.SetWeight(ctx, w)
}

func (r *loggedRouter) Reset(ctx context.Context) error {
	r.mu.Lock()
	r.set = append(r.set, 0)
	r.mu.Unlock()
	return r.Router.Reset(ctx)
}

// weights returns every weight the router was asked for, resets as 0.
func (r *loggedRouter) weights() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.set)
}

// live returns the canary's percent of the replicas in the API server.
func (r *loggedRouter) live(t *testing.T) int {
	t.Helper()
	s, c := replicasOf(t, r.client, r.ns, "web"), replicasOf(t, r.client, r.ns, "web-canary")
	require.Equal(t, int32(total), s+c, "the router keeps the total")
	return int(c * 100 / total)
}

// watchWeight reports the time of each change of the canary's replicas in the API
// server, as a percent of the total.
func (r *loggedRouter) watchWeight(t *testing.T) <-chan weightChange {
	t.Helper()
	w, err := r.client.AppsV1().Deployments(r.ns).Watch(t.Context(), metav1.ListOptions{FieldSelector: "metadata.name=web-canary"})
	require.NoError(t, err)
	out := make(chan weightChange, 1000)
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			d, ok := ev.Object.(*appsv1.Deployment)
			if !ok || ev.Type != watch.Modified {
				continue
			}
			select {
			case out <- weightChange{Weight: int(*d.Spec.Replicas * 100 / total), At: time.Now()}:
			default:
			}
		}
	}()
	return out
}

type weightChange struct {
	Weight int
	At     time.Time
}

// eventReasons lists the reasons of the events.k8s.io Events about a Deployment.
func eventReasons(t *testing.T, c kubernetes.Interface, ns, deployment string) []string {
	t.Helper()
	evs, err := c.EventsV1().Events(ns).List(t.Context(), metav1.ListOptions{})
	require.NoError(t, err)
	var reasons []string
	for _, e := range evs.Items {
		if e.Regarding.Kind == "Deployment" && e.Regarding.Name == deployment {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}
