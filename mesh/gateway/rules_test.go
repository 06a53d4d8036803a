package gateway

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"sigs.k8s.io/yaml"
)

func parseRoute(t *testing.T, doc string) *rules {
	t.Helper()
	r, err := NewWithClient(dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()), Route{Namespace: "shop", Name: "web", Stable: "web", Canary: "web-canary"})
	require.NoError(t, err)
	// Decoded as the API client decodes: whole numbers are int64.
	b, err := yaml.YAMLToJSON([]byte("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n" + doc))
	require.NoError(t, err)
	var u unstructured.Unstructured
	require.NoError(t, u.UnmarshalJSON(b))
	rs, err := r.parse(&u)
	require.NoError(t, err)
	return rs
}

// Weights the route's author wrote are read as shares, rounded down; a ref without
// a weight has the API's default, 1.
func TestWeightOfAuthoredRoutes(t *testing.T) {
	for _, tc := range []struct {
		name, rules string
		want        int32
	}{
		{"stable only", `[{backendRefs: [{name: web}]}]`, 0},
		{"canary only", `[{backendRefs: [{name: web-canary}]}]`, 100},
		{"default weights", `[{backendRefs: [{name: web}, {name: web-canary}]}]`, 50},
		{"two to one", `[{backendRefs: [{name: web, weight: 2}, {name: web-canary, weight: 1}]}]`, 33},
		{"all zero", `[{backendRefs: [{name: web, weight: 0}, {name: web-canary, weight: 0}]}]`, 0},
		{"first weighted rule counts", `[{backendRefs: [{name: assets}]}, {backendRefs: [{name: web, weight: 9}, {name: web-canary, weight: 1}]}]`, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, parseRoute(t, "spec: {rules: "+tc.rules+"}").weight())
		})
	}
}

// A rule that names only the canary gets a stable ref copied from it.
func TestSetWeightAddsMissingRef(t *testing.T) {
	rs := parseRoute(t, `spec: {rules: [{backendRefs: [{name: web-canary, port: 8080}]}]}`)
	rs.setWeight(10)
	refs, s, c := rs.refs(0)
	require.Len(t, refs, 2)
	assert.Equal(t, map[string]any{"name": "web", "port": int64(8080), "weight": int64(90)}, refs[s])
	assert.Equal(t, map[string]any{"name": "web-canary", "port": int64(8080), "weight": int64(10)}, refs[c])
}

// A header match of the same name (in any case) in the shadowed rule is replaced,
// other header matches stay.
func TestHeaderRuleReplacesSameHeader(t *testing.T) {
	rs := parseRoute(t, `spec: {rules: [{matches: [{headers: [{name: x-canary, value: "no"}, {name: x-env, value: prod}]}], backendRefs: [{name: web}]}]}`)
	rs.setHeader("X-Canary", "yes")
	require.Len(t, rs.list, 2)
	h := rs.list[0].(map[string]any)
	assert.Equal(t, "canary-header", h["name"])
	headers := h["matches"].([]any)[0].(map[string]any)["headers"]
	assert.Equal(t, []any{
		map[string]any{"name": "x-env", "value": "prod"},
		map[string]any{"type": "Exact", "name": "X-Canary", "value": "yes"},
	}, headers)
	assert.Equal(t, []int{1}, rs.weighted)
}
