package mtls_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/api/networking/v1"
	securityv1 "istio.io/api/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/mesh/internal/meshtest"
	"github.com/shipkit/shipkit/mesh/istio"
	"github.com/shipkit/shipkit/mesh/mtls"
)

var cluster = testbed.Lazy[*kube.Cluster]{Start: kube.Start}

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.Stop()
	os.Exit(code)
}

// decode checks that obj's spec is a valid Istio message of msg's type (protojson
// rejects unknown fields) and returns it.
func decode[M proto.Message](t *testing.T, obj *unstructured.Unstructured, msg M) M {
	t.Helper()
	b, err := json.Marshal(obj.Object["spec"])
	require.NoError(t, err)
	require.NoError(t, protojson.Unmarshal(b, msg), "%s %s is not a valid Istio spec: %s", obj.GetKind(), obj.GetName(), b)
	return msg
}

func TestObjects(t *testing.T) {
	for _, tc := range []struct {
		name     string
		policy   mtls.Policy
		paName   string
		selector map[string]string
		mode     securityv1.PeerAuthentication_MutualTLS_Mode
		rules    map[string]string // DestinationRule name -> host
	}{
		{
			name:   "namespace",
			policy: mtls.Policy{Namespace: "shop"},
			paName: "default", mode: securityv1.PeerAuthentication_MutualTLS_STRICT,
		},
		{
			name:   "workload with hosts",
			policy: mtls.Policy{Namespace: "shop", Workload: "app=api, tier=backend", Hosts: []string{"api", "web.shop.svc.cluster.local"}},
			paName: "mtls-app-api-tier-backend", selector: map[string]string{"app": "api", "tier": "backend"},
			mode:  securityv1.PeerAuthentication_MutualTLS_STRICT,
			rules: map[string]string{"api": "api", "web": "web.shop.svc.cluster.local"},
		},
		{
			name:   "permissive with a name",
			policy: mtls.Policy{Namespace: "shop", Workload: "app.kubernetes.io/name=legacy", Name: "migrate", Mode: mtls.Permissive},
			paName: "migrate", selector: map[string]string{"app.kubernetes.io/name": "legacy"},
			mode: securityv1.PeerAuthentication_MutualTLS_PERMISSIVE,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := tc.policy.Objects()
			require.NoError(t, err)
			require.Len(t, objs, 1+len(tc.rules))
			pa := objs[0]
			assert.Equal(t, "security.istio.io/v1", pa.GetAPIVersion())
			assert.Equal(t, "PeerAuthentication", pa.GetKind())
			assert.Equal(t, tc.paName, pa.GetName())
			assert.Equal(t, "shop", pa.GetNamespace())
			spec := decode(t, pa, &securityv1.PeerAuthentication{})
			assert.Equal(t, tc.mode, spec.GetMtls().GetMode())
			assert.Equal(t, tc.selector, spec.GetSelector().GetMatchLabels())

			rules := map[string]string{}
			for _, dr := range objs[1:] {
				assert.Equal(t, "networking.istio.io/v1", dr.GetAPIVersion())
				assert.Equal(t, "DestinationRule", dr.GetKind())
				spec := decode(t, dr, &networkingv1.DestinationRule{})
				assert.Equal(t, networkingv1.ClientTLSSettings_ISTIO_MUTUAL, spec.GetTrafficPolicy().GetTls().GetMode())
				rules[dr.GetName()] = spec.GetHost()
			}
			if tc.rules != nil {
				assert.Equal(t, tc.rules, rules)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy mtls.Policy
		want   []string
	}{
		{"empty", mtls.Policy{}, []string{`namespace ""`}},
		{"set-based selector", mtls.Policy{Namespace: "shop", Workload: "app in (a,b)"}, []string{`workload "app in (a,b)"`, "exact labels"}},
		{"bad label key", mtls.Policy{Namespace: "shop", Workload: "-app=x"}, []string{`workload "-app=x"`, `label key "-app"`}},
		{"bad mode", mtls.Policy{Namespace: "shop", Mode: "DISABLE"}, []string{`mode "DISABLE"`}},
		{"bad host", mtls.Policy{Namespace: "shop", Hosts: []string{"Bad_Host"}}, []string{`hosts[0] "Bad_Host"`}},
		{"hosts with one rule name", mtls.Policy{Namespace: "shop", Hosts: []string{"api", "api.other"}}, []string{`hosts[1] "api.other"`, "same name, api"}},
		{"several problems at once", mtls.Policy{Namespace: "Shop", Name: "x_y", Labels: map[string]string{"a": "b c"}},
			[]string{`namespace "Shop"`, `name "x_y"`, `label a value "b c"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.policy.Objects()
			require.Error(t, err)
			for _, w := range tc.want {
				assert.ErrorContains(t, err, w)
			}
		})
	}
}

// The objects apply to a real API server with Istio's CRDs and read back as
// rendered; a DestinationRule shared with the Istio router keeps both the TLS mode
// and the router's subsets.
func TestApply(t *testing.T) {
	c := cluster.Get(t)
	require.NoError(t, meshtest.Install(t.Context(), c.RESTConfig(), meshtest.Istio))
	ns := c.NewNamespace(t)
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	require.NoError(t, err)

	objs, err := mtls.Policy{Namespace: ns, Workload: "app=web", Hosts: []string{"web"}, Labels: map[string]string{"team": "shop"}}.Objects()
	require.NoError(t, err)
	gvr := func(o *unstructured.Unstructured) schema.GroupVersionResource {
		gv := o.GroupVersionKind().GroupVersion()
		return gv.WithResource(map[string]string{"PeerAuthentication": "peerauthentications", "DestinationRule": "destinationrules"}[o.GetKind()])
	}
	for _, o := range objs {
		_, err := dyn.Resource(gvr(o)).Namespace(ns).Apply(t.Context(), o.GetName(), o, metav1.ApplyOptions{FieldManager: "deploy"})
		require.NoError(t, err, "apply %s %s", o.GetKind(), o.GetName())
	}
	for _, o := range objs {
		got, err := dyn.Resource(gvr(o)).Namespace(ns).Get(t.Context(), o.GetName(), metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, o.Object["spec"], got.Object["spec"], "%s %s reads back as rendered", o.GetKind(), o.GetName())
		assert.Equal(t, "shop", got.GetLabels()["team"])
	}

	// The Istio router writes its subsets into the same DestinationRule.
	_, err = c.Clientset().CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	vs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"name": "web"},
		"spec":     map[string]any{"hosts": []any{"web"}, "http": []any{map[string]any{"route": []any{map[string]any{"destination": map[string]any{"host": "web"}}}}}},
	}}
	_, err = dyn.Resource(istio.VirtualServices).Namespace(ns).Apply(t.Context(), "web", vs, metav1.ApplyOptions{FieldManager: "deploy"})
	require.NoError(t, err)
	r, err := istio.New(c.RESTConfig(), istio.Route{Namespace: ns, VirtualService: "web", Service: "web", Stable: "v1", Canary: "v2"})
	require.NoError(t, err)
	require.NoError(t, r.SetWeight(t.Context(), 10))

	got, err := dyn.Resource(istio.DestinationRules).Namespace(ns).Get(t.Context(), "web", metav1.GetOptions{})
	require.NoError(t, err)
	dr := decode(t, got, &networkingv1.DestinationRule{})
	assert.Equal(t, networkingv1.ClientTLSSettings_ISTIO_MUTUAL, dr.GetTrafficPolicy().GetTls().GetMode())
	require.Len(t, dr.GetSubsets(), 2)
	assert.Equal(t, "v2", dr.GetSubsets()[1].GetLabels()["version"])

	// Applying the mTLS objects again (a later deploy) leaves the subsets alone.
	for _, o := range objs {
		_, err := dyn.Resource(gvr(o)).Namespace(ns).Apply(t.Context(), o.GetName(), o, metav1.ApplyOptions{FieldManager: "deploy"})
		require.NoError(t, err)
	}
	got, err = dyn.Resource(istio.DestinationRules).Namespace(ns).Get(t.Context(), "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Len(t, decode(t, got, &networkingv1.DestinationRule{}).GetSubsets(), 2)
	managers := map[string]bool{}
	for _, mf := range got.GetManagedFields() {
		managers[mf.Manager] = true
	}
	assert.Equal(t, map[string]bool{"deploy": true, istio.DefaultFieldManager: true}, managers)
}
