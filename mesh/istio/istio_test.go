package istio_test

import (
	"encoding/json"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/api/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/mesh"
	"github.com/shipkit/shipkit/mesh/internal/meshtest"
	"github.com/shipkit/shipkit/mesh/istio"
)

var cluster = testbed.Lazy[*kube.Cluster]{Start: kube.Start}

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.Stop()
	os.Exit(code)
}

var (
	crdsOnce sync.Once
	crdsErr  error
)

type env struct {
	c   *kube.Cluster
	ns  string
	dyn dynamic.Interface
}

func setup(t testing.TB) *env {
	t.Helper()
	c := cluster.Get(t)
	crdsOnce.Do(func() { crdsErr = meshtest.Install(t.Context(), c.RESTConfig(), meshtest.Istio) })
	require.NoError(t, crdsErr)
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	return &env{c: c, ns: c.NewNamespace(t), dyn: dyn}
}

func (e *env) service(t testing.TB, name string) {
	t.Helper()
	_, err := e.c.Clientset().CoreV1().Services(e.ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// create applies an object written in YAML as its author would (field manager "author").
func (e *env) create(t testing.TB, gvr schema.GroupVersionResource, doc string) {
	t.Helper()
	var u unstructured.Unstructured
	require.NoError(t, yaml.Unmarshal([]byte(doc), &u.Object))
	u.SetAPIVersion(gvr.GroupVersion().String())
	u.SetKind(map[string]string{"virtualservices": "VirtualService", "destinationrules": "DestinationRule"}[gvr.Resource])
	_, err := e.dyn.Resource(gvr).Namespace(e.ns).Apply(t.Context(), u.GetName(), &u, metav1.ApplyOptions{FieldManager: "author"})
	require.NoError(t, err)
}

func (e *env) get(t testing.TB, gvr schema.GroupVersionResource, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := e.dyn.Resource(gvr).Namespace(e.ns).Get(t.Context(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return u
}

// spec returns the object's spec after checking that it is a valid Istio message of
// msg's type: protojson rejects unknown fields and wrong types.
func spec[M proto.Message](t *testing.T, u *unstructured.Unstructured, msg M) M {
	t.Helper()
	b, err := json.Marshal(u.Object["spec"])
	require.NoError(t, err)
	require.NoError(t, protojson.Unmarshal(b, msg), "%s %s is not a valid Istio spec:\n%s", u.GetKind(), u.GetName(), b)
	return msg
}

const virtualService = `
metadata: {name: web, labels: {team: shop}}
spec:
  hosts: [web.shop.example]
  gateways: [shop-gateway]
  http:
  - name: api
    match:
    - uri: {prefix: /api}
    route:
    - destination: {host: web, port: {number: 80}}
    timeout: 5s
  - name: static
    route:
    - destination: {host: assets}
`

func (e *env) shop(t testing.TB) {
	t.Helper()
	e.service(t, "web")
	e.create(t, istio.VirtualServices, virtualService)
}

func (e *env) router(t testing.TB, route istio.Route) *istio.Router {
	t.Helper()
	route.Namespace = e.ns
	route.VirtualService = cmpOr(route.VirtualService, "web")
	route.Service = cmpOr(route.Service, "web")
	route.Stable, route.Canary = cmpOr(route.Stable, "v1"), cmpOr(route.Canary, "v2")
	r, err := istio.New(e.c.RESTConfig(), route)
	require.NoError(t, err)
	return r
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// split returns subset -> weight of an HTTP route's destinations, checking that
// each goes to host web on port 80.
func split(t *testing.T, r *networkingv1.HTTPRoute) map[string]int32 {
	t.Helper()
	w := map[string]int32{}
	for _, d := range r.GetRoute() {
		assert.Equal(t, "web", d.GetDestination().GetHost())
		assert.Equal(t, uint32(80), d.GetDestination().GetPort().GetNumber(), "the destination keeps its port")
		w[d.GetDestination().GetSubset()] = d.GetWeight()
	}
	return w
}

func routeNames(vs *networkingv1.VirtualService) []string {
	var names []string
	for _, r := range vs.GetHttp() {
		names = append(names, r.GetName())
	}
	return names
}

func TestSetWeight(t *testing.T) {
	e := setup(t)
	e.shop(t)
	r := e.router(t, istio.Route{})
	ctx := t.Context()
	for _, w := range []int32{0, 10, 50, 100, 0} {
		require.NoError(t, r.SetWeight(ctx, w))
		u := e.get(t, istio.VirtualServices, "web")
		vs := spec(t, u, &networkingv1.VirtualService{})
		require.Equal(t, []string{"api", "static"}, routeNames(vs))
		api := vs.GetHttp()[0]
		assert.Equal(t, map[string]int32{"stable": 100 - w, "canary": w}, split(t, api), "weight %d", w)
		assert.Equal(t, "/api", api.GetMatch()[0].GetUri().GetPrefix())
		assert.Equal(t, int64(5), api.GetTimeout().GetSeconds(), "other fields of the route stay")
		assert.Equal(t, "assets", vs.GetHttp()[1].GetRoute()[0].GetDestination().GetHost(), "a route elsewhere stays")
		assert.Equal(t, []string{"web.shop.example"}, vs.GetHosts())
		assert.Equal(t, []string{"shop-gateway"}, vs.GetGateways())
		assert.Equal(t, "shop", u.GetLabels()["team"])

		got, err := r.Weight(ctx)
		require.NoError(t, err)
		assert.Equal(t, w, got)

		dru := e.get(t, istio.DestinationRules, "web")
		dr := spec(t, dru, &networkingv1.DestinationRule{})
		assert.Equal(t, "web", dr.GetHost())
		require.Len(t, dr.GetSubsets(), 2)
		assert.Equal(t, "stable", dr.GetSubsets()[0].GetName())
		assert.Equal(t, map[string]string{"version": "v1"}, dr.GetSubsets()[0].GetLabels())
		assert.Equal(t, "canary", dr.GetSubsets()[1].GetName())
		assert.Equal(t, map[string]string{"version": "v2"}, dr.GetSubsets()[1].GetLabels())

		require.NoError(t, r.SetWeight(ctx, w))
		assert.Equal(t, u.GetResourceVersion(), e.get(t, istio.VirtualServices, "web").GetResourceVersion(), "SetWeight(%d) twice", w)
		assert.Equal(t, dru.GetResourceVersion(), e.get(t, istio.DestinationRules, "web").GetResourceVersion(), "SetWeight(%d) twice", w)
	}
	assert.ErrorContains(t, r.SetWeight(ctx, 101), "outside 0-100")
}

// A DestinationRule that exists keeps its traffic policy and other subsets; a new
// router with other versions (after a promotion) relabels the subsets.
func TestExistingDestinationRule(t *testing.T) {
	e := setup(t)
	e.shop(t)
	e.create(t, istio.DestinationRules, `
metadata: {name: web-rule}
spec:
  host: web.`+e.ns+`.svc.cluster.local
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
  subsets:
  - name: legacy
    labels: {version: v0}
  - name: stable
    labels: {version: old, app: web}
`)
	r := e.router(t, istio.Route{DestinationRule: "web-rule", VersionLabel: "app.kubernetes.io/version"})
	require.NoError(t, r.SetWeight(t.Context(), 10))
	dr := spec(t, e.get(t, istio.DestinationRules, "web-rule"), &networkingv1.DestinationRule{})
	assert.Equal(t, networkingv1.ClientTLSSettings_ISTIO_MUTUAL, dr.GetTrafficPolicy().GetTls().GetMode())
	require.Len(t, dr.GetSubsets(), 3)
	assert.Equal(t, "legacy", dr.GetSubsets()[0].GetName())
	assert.Equal(t, map[string]string{"version": "old", "app": "web", "app.kubernetes.io/version": "v1"}, dr.GetSubsets()[1].GetLabels())
	assert.Equal(t, map[string]string{"app.kubernetes.io/version": "v2"}, dr.GetSubsets()[2].GetLabels())

	promoted := e.router(t, istio.Route{DestinationRule: "web-rule", VersionLabel: "app.kubernetes.io/version", Stable: "v2", Canary: "v3"})
	require.NoError(t, promoted.Reset(t.Context()))
	dr = spec(t, e.get(t, istio.DestinationRules, "web-rule"), &networkingv1.DestinationRule{})
	assert.Equal(t, "v2", dr.GetSubsets()[1].GetLabels()["app.kubernetes.io/version"])
	vs := spec(t, e.get(t, istio.VirtualServices, "web"), &networkingv1.VirtualService{})
	assert.Equal(t, map[string]int32{"stable": 100, "canary": 0}, split(t, vs.GetHttp()[0]))
}

func TestHeaderMatch(t *testing.T) {
	e := setup(t)
	e.shop(t)
	r := e.router(t, istio.Route{})
	ctx := t.Context()
	require.NoError(t, r.SetWeight(ctx, 10))
	require.NoError(t, r.SetHeaderMatch(ctx, "X-Canary", "always"))

	u := e.get(t, istio.VirtualServices, "web")
	vs := spec(t, u, &networkingv1.VirtualService{})
	require.Equal(t, []string{"canary-header", "api", "static"}, routeNames(vs), "the header route comes first: Istio takes the first match")
	h := vs.GetHttp()[0]
	require.Len(t, h.GetMatch(), 1)
	assert.Equal(t, "/api", h.GetMatch()[0].GetUri().GetPrefix())
	assert.Equal(t, "always", h.GetMatch()[0].GetHeaders()["x-canary"].GetExact())
	assert.Equal(t, map[string]int32{"canary": 0}, split(t, h), "one destination without weight takes everything")
	assert.Equal(t, map[string]int32{"stable": 90, "canary": 10}, split(t, vs.GetHttp()[1]))

	require.NoError(t, r.SetHeaderMatch(ctx, "x-canary", "always"))
	assert.Equal(t, u.GetResourceVersion(), e.get(t, istio.VirtualServices, "web").GetResourceVersion(), "the same header match twice")

	require.NoError(t, r.SetHeaderMatch(ctx, "x-beta", "on"))
	vs = spec(t, e.get(t, istio.VirtualServices, "web"), &networkingv1.VirtualService{})
	require.Equal(t, []string{"canary-header", "api", "static"}, routeNames(vs))
	assert.Len(t, vs.GetHttp()[0].GetMatch()[0].GetHeaders(), 1)
	assert.Equal(t, "on", vs.GetHttp()[0].GetMatch()[0].GetHeaders()["x-beta"].GetExact())

	got, err := r.Weight(ctx)
	require.NoError(t, err)
	assert.Equal(t, int32(10), got)

	require.NoError(t, r.Reset(ctx))
	vs = spec(t, e.get(t, istio.VirtualServices, "web"), &networkingv1.VirtualService{})
	assert.Equal(t, []string{"api", "static"}, routeNames(vs))
	assert.Equal(t, map[string]int32{"stable": 100, "canary": 0}, split(t, vs.GetHttp()[0]))
}

func TestCheck(t *testing.T) {
	e := setup(t)
	e.service(t, "web")
	e.create(t, istio.VirtualServices, "metadata: {name: no-svc}\nspec: {hosts: [x], http: [{route: [{destination: {host: api}}]}]}")
	e.create(t, istio.VirtualServices, "metadata: {name: elsewhere}\nspec: {hosts: [x], http: [{route: [{destination: {host: other}}]}]}")
	e.create(t, istio.VirtualServices, "metadata: {name: mixed}\nspec: {hosts: [x], http: [{name: both, route: [{destination: {host: web}, weight: 50}, {destination: {host: other}, weight: 50}]}]}")
	e.create(t, istio.VirtualServices, "metadata: {name: web}\nspec: {hosts: [x], http: [{route: [{destination: {host: web.other-namespace.svc.cluster.local}}]}]}")
	e.create(t, istio.VirtualServices, "metadata: {name: good}\nspec: {hosts: [x], http: [{route: [{destination: {host: web}}]}]}")
	e.create(t, istio.DestinationRules, "metadata: {name: foreign}\nspec: {host: other}")

	for _, tc := range []struct {
		name  string
		route istio.Route
		want  string
	}{
		{"missing VirtualService", istio.Route{VirtualService: "missing"}, "VirtualService " + e.ns + "/missing: not found"},
		{"missing Service", istio.Route{VirtualService: "no-svc", Service: "api"}, "Service " + e.ns + "/api: not found"},
		{"no route to the Service", istio.Route{VirtualService: "elsewhere"}, "has no HTTP route to host web"},
		{"route to another namespace's web", istio.Route{VirtualService: "web"}, "has no HTTP route to host web"},
		{"mixed route", istio.Route{VirtualService: "mixed"}, "http route 0 (both) sends traffic to other besides Service web"},
		{"DestinationRule for another host", istio.Route{VirtualService: "good", DestinationRule: "foreign"}, `DestinationRule ` + e.ns + `/foreign: is for host "other"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.router(t, tc.route)
			err := r.Check(t.Context())
			require.ErrorIs(t, err, mesh.ErrPrerequisite)
			assert.ErrorContains(t, err, tc.want)

			// A router that fails its check writes nothing.
			before, _ := e.dyn.Resource(istio.VirtualServices).Namespace(e.ns).Get(t.Context(), tc.route.VirtualService, metav1.GetOptions{})
			err = r.SetWeight(t.Context(), 10)
			assert.ErrorContains(t, err, tc.want)
			if before != nil {
				assert.Equal(t, before.GetResourceVersion(), e.get(t, istio.VirtualServices, tc.route.VirtualService).GetResourceVersion())
			}
			_, err = e.dyn.Resource(istio.DestinationRules).Namespace(e.ns).Get(t.Context(), "web", metav1.GetOptions{})
			assert.Error(t, err, "no DestinationRule was created")
		})
	}
	require.NoError(t, e.router(t, istio.Route{VirtualService: "good"}).Check(t.Context()))
}

func TestNewRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		route istio.Route
		want  string
	}{
		{"empty", istio.Route{}, "namespace is empty"},
		{"same versions", istio.Route{Namespace: "a", VirtualService: "b", Service: "c", Stable: "v1", Canary: "v1"}, "same version"},
		{"bad label", istio.Route{Namespace: "a", VirtualService: "b", Service: "c", Stable: "v1", Canary: "v2", VersionLabel: "bad label"}, `version label "bad label"`},
		{"bad version", istio.Route{Namespace: "a", VirtualService: "b", Service: "c", Stable: "v1", Canary: "v 2"}, `version "v 2"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := istio.NewWithClient(nil, tc.route)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// BenchmarkSetWeight measures one weight change on the real API server (read the
// DestinationRule and the VirtualService, apply the VirtualService).
func BenchmarkSetWeight(b *testing.B) {
	e := setup(b)
	e.shop(b)
	r := e.router(b, istio.Route{})
	require.NoError(b, r.SetWeight(b.Context(), 0)) // writes the subsets once
	weights := [2]int32{10, 50}
	for i := 0; b.Loop(); i++ {
		if err := r.SetWeight(b.Context(), weights[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}
