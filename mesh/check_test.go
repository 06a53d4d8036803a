package mesh_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/mesh"
	"github.com/shipkit/shipkit/mesh/gateway"
	"github.com/shipkit/shipkit/mesh/istio"
	"github.com/shipkit/shipkit/mesh/replicas"
)

// This package's cluster never gets the Gateway API or Istio CRDs.
var cluster = testbed.Lazy[*kube.Cluster]{Start: kube.Start}

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.Stop()
	os.Exit(code)
}

// Every router fails its check with a clear error, before any write, when its CRDs
// are not installed or its objects do not exist; the rollout can branch on
// ErrPrerequisite.
func TestRoutersCheckPrerequisites(t *testing.T) {
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	_, err := c.Clientset().CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	gw, err := gateway.New(c.RESTConfig(), gateway.Route{Namespace: ns, Name: "web", Stable: "web", Canary: "web-canary"})
	require.NoError(t, err)
	is, err := istio.New(c.RESTConfig(), istio.Route{Namespace: ns, VirtualService: "web", Service: "web", Stable: "v1", Canary: "v2"})
	require.NoError(t, err)
	rp, err := replicas.New(c.RESTConfig(), replicas.Workload{Namespace: ns, Service: "web", Stable: "web", Canary: "web-canary"})
	require.NoError(t, err)

	for _, tc := range []struct {
		name   string
		router mesh.Router
		want   []string
	}{
		{"gateway", gw, []string{"CustomResourceDefinition httproutes.gateway.networking.k8s.io: not installed (the cluster serves no gateway.networking.k8s.io/v1 HTTPRoute)"}},
		{"istio", is, []string{
			"CustomResourceDefinition virtualservices.networking.istio.io: not installed",
			"CustomResourceDefinition destinationrules.networking.istio.io: not installed",
		}},
		{"replicas", rp, []string{"Deployment " + ns + "/web: not found", "Deployment " + ns + "/web-canary: not found"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checker, ok := tc.router.(mesh.Checker)
			require.True(t, ok, "%T implements mesh.Checker", tc.router)
			_, ok = tc.router.(mesh.WeightReader)
			assert.True(t, ok, "%T implements mesh.WeightReader", tc.router)

			err := checker.Check(t.Context())
			require.ErrorIs(t, err, mesh.ErrPrerequisite)
			for _, w := range tc.want {
				assert.ErrorContains(t, err, w)
			}
			for _, call := range []func() error{
				func() error { return tc.router.SetWeight(t.Context(), 10) },
				func() error { return tc.router.Reset(t.Context()) },
			} {
				err := call()
				assert.ErrorIs(t, err, mesh.ErrPrerequisite)
				assert.ErrorContains(t, err, tc.want[0])
			}
		})
	}
	// Nothing was written: the namespace holds only what the test created.
	deps, err := c.Clientset().AppsV1().Deployments(ns).List(t.Context(), metav1.ListOptions{})
	require.NoError(t, err)
	assert.Empty(t, deps.Items)
}
