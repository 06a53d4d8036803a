package gateway_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/mesh"
	"github.com/shipkit/shipkit/mesh/gateway"
	"github.com/shipkit/shipkit/mesh/internal/meshtest"
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

// env is one test's namespace in the shared cluster, with the Gateway API CRDs installed.
type env struct {
	c   *kube.Cluster
	ns  string
	dyn dynamic.Interface
}

func setup(t testing.TB) *env {
	t.Helper()
	c := cluster.Get(t)
	crdsOnce.Do(func() { crdsErr = meshtest.Install(context.Background(), c.RESTConfig(), meshtest.GatewayAPI) })
	require.NoError(t, crdsErr)
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	return &env{c: c, ns: c.NewNamespace(t), dyn: dyn}
}

// service creates a Service with the given ports.
func (e *env) service(t testing.TB, name string, ports ...int32) {
	t.Helper()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}}}
	for _, p := range ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: fmt.Sprintf("p%d", p), Port: p})
	}
	_, err := e.c.Clientset().CoreV1().Services(e.ns).Create(t.Context(), svc, metav1.CreateOptions{})
	require.NoError(t, err)
}

// route applies an HTTPRoute as its author would (field manager "author").
func (e *env) route(t testing.TB, name string, rules ...gatewayv1.HTTPRouteRule) {
	t.Helper()
	rt := &gatewayv1.HTTPRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: "gateway.networking.k8s.io/v1", Kind: "HTTPRoute"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns, Labels: map[string]string{"team": "shop"}},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "shared-gateway"}}},
			Hostnames:       []gatewayv1.Hostname{"shop.example"},
			Rules:           rules,
		},
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(rt)
	require.NoError(t, err)
	_, err = e.dyn.Resource(gateway.HTTPRoutes).Namespace(e.ns).Apply(t.Context(), name,
		&unstructured.Unstructured{Object: m}, metav1.ApplyOptions{FieldManager: "author"})
	require.NoError(t, err)
}

// get reads the route back, typed, with its resourceVersion.
func (e *env) get(t testing.TB, name string) *gatewayv1.HTTPRoute {
	t.Helper()
	u, err := e.dyn.Resource(gateway.HTTPRoutes).Namespace(e.ns).Get(t.Context(), name, metav1.GetOptions{})
	require.NoError(t, err)
	var rt gatewayv1.HTTPRoute
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &rt))
	return &rt
}

func (e *env) router(t testing.TB, name string, opts ...gateway.Option) *gateway.Router {
	t.Helper()
	r, err := gateway.New(e.c.RESTConfig(), gateway.Route{Namespace: e.ns, Name: name, Stable: "web", Canary: "web-canary"}, opts...)
	require.NoError(t, err)
	return r
}

func backend(name string, port int32) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
		Name: gatewayv1.ObjectName(name), Port: ptr.To(port),
	}}}
}

func prefix(p string) []gatewayv1.HTTPRouteMatch {
	return []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To(p)}}}
}

// shop is the route most tests split: /api goes to web, /static to assets.
func (e *env) shop(t testing.TB) {
	t.Helper()
	e.service(t, "web", 80)
	e.service(t, "web-canary", 80)
	e.route(t, "shop",
		gatewayv1.HTTPRouteRule{Name: ptr.To(gatewayv1.SectionName("api")), Matches: prefix("/api"), BackendRefs: []gatewayv1.HTTPBackendRef{backend("web", 80)}},
		gatewayv1.HTTPRouteRule{Name: ptr.To(gatewayv1.SectionName("static")), Matches: prefix("/static"), BackendRefs: []gatewayv1.HTTPBackendRef{backend("assets", 8080)}},
	)
}

// weights returns the weight of every backendRef of rule, by Service name.
func weights(rule gatewayv1.HTTPRouteRule) map[string]int32 {
	w := map[string]int32{}
	for _, ref := range rule.BackendRefs {
		w[string(ref.Name)] = ptr.Deref(ref.Weight, -1)
	}
	return w
}

func ruleNames(rt *gatewayv1.HTTPRoute) []string {
	var names []string
	for _, r := range rt.Spec.Rules {
		names = append(names, string(ptr.Deref(r.Name, "")))
	}
	return names
}

func TestSetWeight(t *testing.T) {
	e := setup(t)
	e.shop(t)
	before := e.get(t, "shop")
	r := e.router(t, "shop")
	ctx := t.Context()
	for _, w := range []int32{0, 10, 50, 100, 0} {
		require.NoError(t, r.SetWeight(ctx, w))
		rt := e.get(t, "shop")
		require.Len(t, rt.Spec.Rules, 2)
		api := rt.Spec.Rules[0]
		assert.Equal(t, map[string]int32{"web": 100 - w, "web-canary": w}, weights(api), "weight %d", w)
		for _, ref := range api.BackendRefs {
			assert.Equal(t, gatewayv1.PortNumber(80), ptr.Deref(ref.Port, 0), "the canary ref copies the stable one's port")
		}
		assert.Equal(t, before.Spec.Rules[0].Matches, api.Matches)
		assert.Equal(t, before.Spec.Rules[1], rt.Spec.Rules[1], "a rule to other backends is not touched")
		assert.Equal(t, before.Spec.ParentRefs, rt.Spec.ParentRefs)
		assert.Equal(t, before.Spec.Hostnames, rt.Spec.Hostnames)
		assert.Equal(t, before.Labels, rt.Labels)

		got, err := r.Weight(ctx)
		require.NoError(t, err)
		assert.Equal(t, w, got)

		// Idempotent: the same weight again writes nothing.
		require.NoError(t, r.SetWeight(ctx, w))
		assert.Equal(t, rt.ResourceVersion, e.get(t, "shop").ResourceVersion, "SetWeight(%d) twice changed the route", w)
	}

	// The router owns the rules only; the author keeps the rest of the route.
	owners := map[string][]string{}
	for _, mf := range e.get(t, "shop").ManagedFields {
		owners[mf.Manager] = append(owners[mf.Manager], mf.FieldsV1.GetRawString())
	}
	require.Contains(t, owners, gateway.DefaultFieldManager)
	assert.Contains(t, owners[gateway.DefaultFieldManager][0], `"f:rules"`)
	assert.NotContains(t, owners[gateway.DefaultFieldManager][0], `"f:parentRefs"`)
	require.Contains(t, owners, "author")
	assert.Contains(t, owners["author"][0], `"f:parentRefs"`)
	assert.Contains(t, owners["author"][0], `"f:hostnames"`)

	assert.ErrorContains(t, r.SetWeight(ctx, 101), "outside 0-100")
	assert.ErrorContains(t, r.SetWeight(ctx, -1), "outside 0-100")
}

func TestHeaderMatch(t *testing.T) {
	e := setup(t)
	e.shop(t)
	r := e.router(t, "shop")
	ctx := t.Context()
	require.NoError(t, r.SetWeight(ctx, 10))
	require.NoError(t, r.SetHeaderMatch(ctx, "X-Canary", "always"))

	rt := e.get(t, "shop")
	require.Equal(t, []string{"canary-header", "api", "static"}, ruleNames(rt))
	h := rt.Spec.Rules[0]
	require.Len(t, h.Matches, 1)
	assert.Equal(t, prefix("/api")[0].Path, h.Matches[0].Path, "the header rule keeps the path of the rule it shadows")
	assert.Equal(t, []gatewayv1.HTTPHeaderMatch{{Type: ptr.To(gatewayv1.HeaderMatchExact), Name: "X-Canary", Value: "always"}}, h.Matches[0].Headers)
	assert.Equal(t, map[string]int32{"web-canary": 100}, weights(h))
	assert.Equal(t, map[string]int32{"web": 90, "web-canary": 10}, weights(rt.Spec.Rules[1]), "the weights stay")

	require.NoError(t, r.SetHeaderMatch(ctx, "X-Canary", "always"))
	assert.Equal(t, rt.ResourceVersion, e.get(t, "shop").ResourceVersion, "the same header match twice changed the route")

	// A new header match replaces the old one.
	require.NoError(t, r.SetHeaderMatch(ctx, "x-beta", "yes"))
	rt = e.get(t, "shop")
	require.Equal(t, []string{"canary-header", "api", "static"}, ruleNames(rt))
	assert.Equal(t, gatewayv1.HTTPHeaderName("x-beta"), rt.Spec.Rules[0].Matches[0].Headers[0].Name)

	got, err := r.Weight(ctx)
	require.NoError(t, err)
	assert.Equal(t, int32(10), got, "the header rule does not count as the weighted rule")

	require.NoError(t, r.Reset(ctx))
	rt = e.get(t, "shop")
	assert.Equal(t, []string{"api", "static"}, ruleNames(rt))
	assert.Equal(t, map[string]int32{"web": 100, "web-canary": 0}, weights(rt.Spec.Rules[0]))
	require.NoError(t, r.Reset(ctx))
	assert.Equal(t, rt.ResourceVersion, e.get(t, "shop").ResourceVersion, "Reset twice changed the route")

	assert.ErrorContains(t, r.SetHeaderMatch(ctx, "X Canary", "1"), "not allowed in a header name")
	assert.ErrorContains(t, r.SetHeaderMatch(ctx, "X-Canary", ""), "value is empty")
}

// A route with several rules to the stable Service gets one header rule before each,
// and a catch-all rule's header rule matches every path.
func TestHeaderMatchSeveralRules(t *testing.T) {
	e := setup(t)
	e.service(t, "web", 80, 8080)
	e.service(t, "web-canary", 80, 8080)
	e.route(t, "web",
		gatewayv1.HTTPRouteRule{Matches: prefix("/v2"), BackendRefs: []gatewayv1.HTTPBackendRef{backend("web", 8080)}},
		gatewayv1.HTTPRouteRule{BackendRefs: []gatewayv1.HTTPBackendRef{backend("web", 80)}},
	)
	r := e.router(t, "web", gateway.WithHeaderRule("ab"))
	require.NoError(t, r.SetHeaderMatch(t.Context(), "x-group", "b"))
	rt := e.get(t, "web")
	require.Equal(t, []string{"ab-1", "", "ab-2", ""}, ruleNames(rt))
	assert.Equal(t, "/v2", *rt.Spec.Rules[0].Matches[0].Path.Value)
	assert.Equal(t, gatewayv1.PortNumber(8080), *rt.Spec.Rules[0].BackendRefs[0].Port)
	assert.Equal(t, "/", *rt.Spec.Rules[2].Matches[0].Path.Value)
	assert.Equal(t, gatewayv1.PortNumber(80), *rt.Spec.Rules[2].BackendRefs[0].Port)
	for _, i := range []int{0, 2} {
		assert.Equal(t, "b", rt.Spec.Rules[i].Matches[0].Headers[0].Value)
		assert.Equal(t, map[string]int32{"web-canary": 100}, weights(rt.Spec.Rules[i]))
	}
	require.NoError(t, r.SetWeight(t.Context(), 50))
	rt = e.get(t, "web")
	assert.Equal(t, map[string]int32{"web": 50, "web-canary": 50}, weights(rt.Spec.Rules[1]))
	assert.Equal(t, map[string]int32{"web": 50, "web-canary": 50}, weights(rt.Spec.Rules[3]))
	require.NoError(t, r.Reset(t.Context()))
	assert.Equal(t, []string{"", ""}, ruleNames(e.get(t, "web")))
}

func TestCheck(t *testing.T) {
	e := setup(t)
	e.service(t, "web", 80)
	e.service(t, "other", 80)
	e.route(t, "no-canary-svc", gatewayv1.HTTPRouteRule{BackendRefs: []gatewayv1.HTTPBackendRef{backend("web", 80)}})
	e.route(t, "elsewhere", gatewayv1.HTTPRouteRule{BackendRefs: []gatewayv1.HTTPBackendRef{backend("other", 80)}})
	e.route(t, "mixed", gatewayv1.HTTPRouteRule{BackendRefs: []gatewayv1.HTTPBackendRef{backend("web", 80), backend("other", 80)}})
	e.route(t, "bad-port", gatewayv1.HTTPRouteRule{BackendRefs: []gatewayv1.HTTPBackendRef{backend("web", 9090)}})

	for _, tc := range []struct {
		route, want string
	}{
		{"missing", "HTTPRoute " + e.ns + "/missing: not found"},
		{"no-canary-svc", "Service " + e.ns + "/web-canary: not found"},
		{"elsewhere", "has no rule with a backendRef to Service web or web-canary"},
		{"mixed", "rule 0 sends traffic to Service other besides Services web and web-canary"},
		{"bad-port", "Service " + e.ns + "/web: has no port 9090"},
	} {
		t.Run(tc.route, func(t *testing.T) {
			r := e.router(t, tc.route)
			err := r.Check(t.Context())
			require.ErrorIs(t, err, mesh.ErrPrerequisite)
			assert.ErrorContains(t, err, tc.want)

			if tc.route == "missing" {
				return
			}
			// A router that fails its check writes nothing.
			before := e.get(t, tc.route)
			err = r.SetWeight(t.Context(), 10)
			assert.ErrorIs(t, err, mesh.ErrPrerequisite)
			assert.ErrorContains(t, err, tc.want)
			assert.Equal(t, before.ResourceVersion, e.get(t, tc.route).ResourceVersion)
		})
	}
}

// A writer that changes the route between the router's read and its apply does not
// lose its change: the apply fails on the stale resourceVersion and the router
// reads again.
func TestConcurrentWriter(t *testing.T) {
	e := setup(t)
	e.shop(t)
	racer := &racingClient{Interface: e.dyn, t: t, ns: e.ns}
	r, err := gateway.NewWithClient(racer,
		gateway.Route{Namespace: e.ns, Name: "shop", Stable: "web", Canary: "web-canary"})
	require.NoError(t, err)
	require.NoError(t, r.SetWeight(t.Context(), 30))
	require.True(t, racer.raced)
	rt := e.get(t, "shop")
	assert.Equal(t, map[string]int32{"web": 70, "web-canary": 30}, weights(rt.Spec.Rules[0]))
	assert.Equal(t, "/static-v2", *rt.Spec.Rules[1].Matches[0].Path.Value, "the other writer's change survives")
}

// racingClient changes the "static" rule of the route with an ordinary update just
// before the first apply goes out.
type racingClient struct {
	dynamic.Interface
	t     *testing.T
	ns    string
	raced bool
}

func (c *racingClient) Resource(gvr schema.GroupVersionResource) dynamic.NamespaceableResourceInterface {
	return &racingResource{NamespaceableResourceInterface: c.Interface.Resource(gvr), c: c}
}

type racingResource struct {
	dynamic.NamespaceableResourceInterface
	c *racingClient
}

func (r *racingResource) Namespace(ns string) dynamic.ResourceInterface {
	return &racingNamespaced{ResourceInterface: r.NamespaceableResourceInterface.Namespace(ns), c: r.c}
}

type racingNamespaced struct {
	dynamic.ResourceInterface
	c *racingClient
}

func (r *racingNamespaced) Apply(ctx context.Context, name string, obj *unstructured.Unstructured, opts metav1.ApplyOptions, sub ...string) (*unstructured.Unstructured, error) {
	if !r.c.raced {
		r.c.raced = true
		cur, err := r.ResourceInterface.Get(ctx, name, metav1.GetOptions{})
		require.NoError(r.c.t, err)
		rules, _, _ := unstructured.NestedSlice(cur.Object, "spec", "rules")
		match := rules[1].(map[string]any)["matches"].([]any)[0].(map[string]any)
		match["path"].(map[string]any)["value"] = "/static-v2"
		require.NoError(r.c.t, unstructured.SetNestedSlice(cur.Object, rules, "spec", "rules"))
		_, err = r.ResourceInterface.Update(ctx, cur, metav1.UpdateOptions{FieldManager: "racer"})
		require.NoError(r.c.t, err)
	}
	return r.ResourceInterface.Apply(ctx, name, obj, opts, sub...)
}

// BenchmarkSetWeight measures one weight change on the real API server (read,
// apply): the router's share of a rollback's latency.
func BenchmarkSetWeight(b *testing.B) {
	e := setup(b)
	e.shop(b)
	r := e.router(b, "shop")
	require.NoError(b, r.Check(b.Context()))
	weights := [2]int32{10, 50}
	for i := 0; b.Loop(); i++ {
		if err := r.SetWeight(b.Context(), weights[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}
