package rollout_test

import (
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/internal/testbed/prom"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/observe/analysis"
)

var (
	blueLabels  = map[string]string{"app": "web", "color": "blue"}
	greenLabels = map[string]string{"app": "web", "color": "green"}
)

// newBlueGreenEnv adds to e's namespace a blue (v1, active) and a green (v2)
// Deployment of 3 replicas, an active Service selecting blue and a preview Service.
func newBlueGreenEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	for _, d := range []*appsv1.Deployment{
		deployment("blue", blueLabels, "registry.example/web:v1", 3, false),
		deployment("green", greenLabels, "registry.example/web:v2", 3, false),
	} {
		d.Namespace = e.ns
		_, err := e.client.AppsV1().Deployments(e.ns).Create(t.Context(), d, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	for _, name := range []string{"web-active", "web-preview"} {
		svc := service(name, blueLabels)
		svc.Namespace = e.ns
		svc.Spec.Ports = []corev1.ServicePort{{Port: 80}}
		_, err := e.client.CoreV1().Services(e.ns).Create(t.Context(), svc, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	e.waitReady(t, "blue")
	return e
}

func (e *env) blueGreen(t *testing.T, spec rollout.BlueGreen, opts ...rollout.Option) *rollout.BlueGreenRollout {
	t.Helper()
	spec.Name, spec.Namespace = "web-bg", e.ns
	spec.ActiveService, spec.PreviewService, spec.Selector = "web-active", "web-preview", greenLabels
	r, err := rollout.NewBlueGreen(e.cluster.RESTConfig(), spec, append([]rollout.Option{rollout.WithPollInterval(100 * time.Millisecond),
		rollout.WithReadyTimeout(time.Minute), rollout.WithLeaseDuration(3 * time.Second), rollout.WithStateKey(stateKey)}, opts...)...)
	require.NoError(t, err)
	return r
}

func (e *env) selector(t *testing.T, svc string) map[string]string {
	t.Helper()
	s, err := e.client.CoreV1().Services(e.ns).Get(t.Context(), svc, metav1.GetOptions{})
	require.NoError(t, err)
	return s.Spec.Selector
}

func TestBlueGreenPromotesAndKeepsOldForWindow(t *testing.T) {
	e := newBlueGreenEnv(t)
	var mu sync.Mutex
	var duringWindow []int32 // blue's replicas while the rollback window runs
	obs := observe.ObserverFunc(func(ev observe.Event) {
		if ev.Stage == rollout.Stage && ev.Step == "step 6/6 RollbackWindow" && ev.Phase == observe.Started {
			mu.Lock()
			defer mu.Unlock()
			duringWindow = append(duringWindow, replicasOf(t, e.client, e.ns, "blue"))
			assert.Equal(t, greenLabels, e.selector(t, "web-active"), "users already on green")
		}
	})
	r := e.blueGreen(t, rollout.BlueGreen{PrePromotion: []analysis.Check{e.successRate(3)}, RollbackWindow: 2 * time.Second},
		rollout.WithObserver(obs))
	res, err := r.Run(t.Context())
	require.NoError(t, err)
	t.Log(res)
	require.Equal(t, rollout.Promoted, res.Phase, res.String())

	assert.Equal(t, greenLabels, e.selector(t, "web-active"))
	assert.Equal(t, greenLabels, e.selector(t, "web-preview"))
	mu.Lock()
	assert.Equal(t, []int32{3}, duringWindow, "blue kept running through the rollback window")
	mu.Unlock()
	assert.Equal(t, int32(0), replicasOf(t, e.client, e.ns, "blue"), "blue scaled down after the window")
	e.waitReady(t, "green")

	var kinds []rollout.StepKind
	for _, s := range res.Steps {
		assert.Equal(t, rollout.StepCompleted, s.Phase, s.Step.Kind)
		kinds = append(kinds, s.Step.Kind)
	}
	assert.Equal(t, []rollout.StepKind{"Preview", "PrePromotionAnalysis", "Promote", "RollbackWindow"}, kinds)
	assert.GreaterOrEqual(t, res.Steps[3].Duration(), 1900*time.Millisecond)
	assert.Equal(t, analysis.Successful, res.Steps[1].Analysis.Phase)

	st, err := r.Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, rollout.Promoted, st.Phase)
	assert.Equal(t, "blue", st.Previous)
	assert.Equal(t, blueLabels, st.PreviousSelector)
	assert.Contains(t, eventReasons(t, e.client, e.ns, "green"), rollout.ReasonPromoted)

	// Rollback after the window: blue comes back, then takes the traffic back.
	res, err = r.Rollback(t.Context(), "bad release")
	require.NoError(t, err)
	assert.Equal(t, rollout.Aborted, res.Phase)
	assert.Equal(t, blueLabels, e.selector(t, "web-active"))
	assert.Equal(t, int32(3), replicasOf(t, e.client, e.ns, "blue"))
	e.waitReady(t, "blue")
	assert.Equal(t, int32(0), replicasOf(t, e.client, e.ns, "green"))
}

func TestBlueGreenPostPromotionFailureSwitchesBack(t *testing.T) {
	e := newBlueGreenEnv(t)
	e.app.SetTraffic("v2", prom.Traffic{RPS: 100, ErrorRate: 0.5, Latency: 10 * time.Millisecond})
	e.settle(t, 0.5)
	r := e.blueGreen(t, rollout.BlueGreen{PostPromotion: []analysis.Check{e.successRate(3)}, RollbackWindow: time.Minute})
	res, err := r.Run(t.Context())
	require.NoError(t, err)
	t.Log(res)
	assert.Equal(t, rollout.Aborted, res.Phase)
	assert.Contains(t, res.Message, "PostPromotionAnalysis failed")
	assert.Equal(t, blueLabels, e.selector(t, "web-active"), "switched back")
	assert.Equal(t, int32(3), replicasOf(t, e.client, e.ns, "blue"))
	assert.Equal(t, int32(0), replicasOf(t, e.client, e.ns, "green"))
	var actions []string
	for _, d := range res.Decisions {
		actions = append(actions, d.Action)
	}
	assert.Equal(t, []string{"start", "promote", "abort"}, actions)
}

// Bad input is refused before any Service changes.
func TestBlueGreenChecksBeforeSwitching(t *testing.T) {
	objects := func() []*appsv1.Deployment {
		return []*appsv1.Deployment{deployment("blue", blueLabels, "web:v1", 3, true), deployment("green", greenLabels, "web:v2", 3, true)}
	}
	tests := []struct {
		name     string
		services []*corev1.Service
		deps     []*appsv1.Deployment
		want     string
	}{
		{"no preview Service", []*corev1.Service{service("web-active", blueLabels)}, objects(), "Service shop/web-preview does not exist"},
		{"active selects nothing", []*corev1.Service{service("web-active", map[string]string{"app": "other"}), service("web-preview", nil)}, objects(),
			"active Service shop/web-active (selector app=other) selects no Deployment"},
		{"active has no selector", []*corev1.Service{service("web-active", nil), service("web-preview", nil)}, objects(),
			"active Service shop/web-active has no selector to switch"},
		{"no new Deployment", []*corev1.Service{service("web-active", blueLabels), service("web-preview", nil)}, objects()[:1],
			"no new Deployment in namespace shop has the labels app=web,color=green"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := withResourceVersions(fake.NewClientset())
			for _, s := range tt.services {
				_, err := c.CoreV1().Services(ns).Create(t.Context(), s, metav1.CreateOptions{})
				require.NoError(t, err)
			}
			for _, d := range tt.deps {
				_, err := c.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{})
				require.NoError(t, err)
			}
			before := map[string]map[string]string{}
			for _, s := range tt.services {
				before[s.Name] = maps.Clone(s.Spec.Selector)
			}
			r, err := rollout.NewBlueGreenWithClient(c, rollout.BlueGreen{Name: "web-bg", Namespace: ns, ActiveService: "web-active",
				PreviewService: "web-preview", Selector: greenLabels}, fastOpts()...)
			require.NoError(t, err)
			_, err = r.Run(t.Context())
			require.ErrorIs(t, err, rollout.ErrInvalid)
			assert.ErrorContains(t, err, tt.want)
			for _, s := range tt.services {
				got, err := c.CoreV1().Services(ns).Get(t.Context(), s.Name, metav1.GetOptions{})
				require.NoError(t, err)
				assert.Equal(t, before[s.Name], got.Spec.Selector)
			}
		})
	}
	t.Run("bad description", func(t *testing.T) {
		_, err := rollout.NewBlueGreenWithClient(fake.NewClientset(), rollout.BlueGreen{Name: "web-bg", Namespace: ns,
			ActiveService: "web", PreviewService: "web", RollbackWindow: -time.Second})
		require.ErrorIs(t, err, rollout.ErrInvalid)
		assert.ErrorContains(t, err, `the active and preview Service are both "web"`)
		assert.ErrorContains(t, err, "no selector for the new version's Deployment")
		assert.ErrorContains(t, err, "rollback window -1s is negative")
		assert.ErrorContains(t, err, "WithStateKey: key shorter than 32 bytes", "no state key")
	})
}
