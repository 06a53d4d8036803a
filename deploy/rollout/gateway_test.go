package rollout_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/mesh"
	"github.com/shipkit/shipkit/mesh/gateway"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/observe/analysis"
)

var (
	crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	// installMu and installed make the tests install the HTTPRoute CRD once.
	installMu sync.Mutex
	installed bool
)

// installHTTPRouteCRD installs the Gateway API's HTTPRoute CRD from the YAML that
// ships in the sigs.k8s.io/gateway-api module of go.mod, and waits until it is served.
func installHTTPRouteCRD(t *testing.T, dyn dynamic.Interface) {
	t.Helper()
	installMu.Lock()
	defer installMu.Unlock()
	if installed {
		return
	}
	dir, err := exec.CommandContext(t.Context(), "go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	require.NoError(t, err, "go list -m sigs.k8s.io/gateway-api")
	file := filepath.Join(strings.TrimSpace(string(dir)), "config", "crd", "standard", "gateway.networking.k8s.io_httproutes.yaml")
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	crd := &unstructured.Unstructured{}
	require.NoError(t, yaml.Unmarshal(b, &crd.Object))
	_, err = dyn.Resource(crdGVR).Create(t.Context(), crd, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
	waitFor(t, time.Minute, func(c *assert.CollectT) {
		got, err := dyn.Resource(crdGVR).Get(t.Context(), crd.GetName(), metav1.GetOptions{})
		require.NoError(c, err)
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		established := false
		for _, cond := range conds {
			m, _ := cond.(map[string]any)
			established = established || (m["type"] == "Established" && m["status"] == "True")
		}
		assert.True(c, established, "CRD %s established", crd.GetName())
	})
	installed = true
}

// routeWeights reads the HTTPRoute's backend weights, by Service.
func routeWeights(t *testing.T, dyn dynamic.Interface, ns string) map[string]int64 {
	t.Helper()
	r, err := dyn.Resource(gateway.HTTPRoutes).Namespace(ns).Get(t.Context(), "web", metav1.GetOptions{})
	require.NoError(t, err)
	rules, _, _ := unstructured.NestedSlice(r.Object, "spec", "rules")
	require.Len(t, rules, 1)
	refs, _, _ := unstructured.NestedSlice(rules[0].(map[string]any), "backendRefs")
	out := map[string]int64{}
	for _, ref := range refs {
		m := ref.(map[string]any)
		out[m["name"].(string)] = m["weight"].(int64)
	}
	return out
}

// A canary through the Gateway API router: the canary is scaled up and ready before
// its first traffic, the HTTPRoute carries each weight, and promotion leaves it all on
// stable.
func TestCanaryThroughGatewayAPI(t *testing.T) {
	e := newEnv(t)
	dyn, err := dynamic.NewForConfig(e.cluster.RESTConfig())
	require.NoError(t, err)
	installHTTPRouteCRD(t, dyn)
	for name, track := range map[string]string{"web-stable": "stable", "web-canary": "canary"} {
		svc := service(name, map[string]string{"app": "web", "track": track})
		svc.Namespace = e.ns
		svc.Spec.Ports = []corev1.ServicePort{{Port: 80}}
		_, err := e.client.CoreV1().Services(e.ns).Create(t.Context(), svc, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	route := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
		"metadata": map[string]any{"name": "web", "namespace": e.ns},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"name": "edge"}},
			"rules": []any{map[string]any{"backendRefs": []any{
				map[string]any{"name": "web-stable", "port": int64(80), "weight": int64(100)},
				map[string]any{"name": "web-canary", "port": int64(80), "weight": int64(0)},
			}}},
		},
	}}
	_, err = dyn.Resource(gateway.HTTPRoutes).Namespace(e.ns).Create(t.Context(), route, metav1.CreateOptions{})
	require.NoError(t, err)
	router, err := gateway.New(e.cluster.RESTConfig(), gateway.Route{Namespace: e.ns, Name: "web", Stable: "web-stable", Canary: "web-canary"})
	require.NoError(t, err)

	var mu sync.Mutex
	var atAnalysis []string // what the analysis step found in the cluster
	obs := observe.ObserverFunc(func(ev observe.Event) {
		if ev.Stage != rollout.Stage || ev.Phase != observe.Started || !strings.HasPrefix(ev.Step, "step 2/") {
			return
		}
		w, err := router.Weight(context.Background())
		assert.NoError(t, err)
		d, err := e.client.AppsV1().Deployments(e.ns).Get(context.Background(), "web-canary", metav1.GetOptions{})
		assert.NoError(t, err)
		mu.Lock()
		defer mu.Unlock()
		atAnalysis = append(atAnalysis, fmt.Sprintf("weight %d, canary %d/%d available", w, d.Status.AvailableReplicas, *d.Spec.Replicas))
	})
	r, err := rollout.NewCanary(e.cluster.RESTConfig(), rollout.Canary{
		Name: "web", Namespace: e.ns, StableSelector: stableLabels, CanarySelector: canaryLabels,
		Router: router, CanaryReplicas: 2, Services: []string{"web-stable", "web-canary"},
		Steps: []rollout.Step{rollout.SetWeight(20), rollout.Analysis(e.successRate(2)), rollout.SetWeight(100)},
	}, rollout.WithPollInterval(100*time.Millisecond), rollout.WithReadyTimeout(time.Minute), rollout.WithObserver(obs), rollout.WithStateKey(stateKey))
	require.NoError(t, err)
	res, err := r.Run(t.Context())
	require.NoError(t, err)
	t.Log(res)
	require.Equal(t, rollout.Promoted, res.Phase, res.String())
	mu.Lock()
	assert.Equal(t, []string{"weight 20, canary 2/2 available"}, atAnalysis)
	mu.Unlock()
	assert.Equal(t, map[string]int64{"web-stable": 100, "web-canary": 0}, routeWeights(t, dyn, e.ns))
	assert.Equal(t, analysis.Successful, res.Steps[1].Analysis.Phase)
	assert.Equal(t, "registry.example/web:v2", image(t, e.client, e.ns, "web"))
	assert.Equal(t, int32(0), replicasOf(t, e.client, e.ns, "web-canary"))
}

// A route that does not exist (or whose CRD is not installed) fails the run before
// anything moves.
func TestCanaryGatewayRouteMissing(t *testing.T) {
	e := newEnv(t)
	router, err := gateway.New(e.cluster.RESTConfig(), gateway.Route{Namespace: e.ns, Name: "no-such-route", Stable: "web", Canary: "web-c"})
	require.NoError(t, err)
	r, err := rollout.NewCanaryWithClient(e.client, rollout.Canary{Name: "web", Namespace: e.ns, StableSelector: stableLabels,
		CanarySelector: canaryLabels, Router: router, CanaryReplicas: 2, Steps: []rollout.Step{rollout.SetWeight(100)}}, rollout.WithStateKey(stateKey))
	require.NoError(t, err)
	_, err = r.Run(t.Context())
	require.ErrorIs(t, err, rollout.ErrInvalid)
	assert.ErrorIs(t, err, mesh.ErrPrerequisite)
	t.Log(err)
	assert.Equal(t, int32(0), replicasOf(t, e.client, e.ns, "web-canary"), "nothing scaled")
	st, err := r.Status(t.Context())
	require.NoError(t, err)
	assert.Nil(t, st, "nothing recorded")
}
