package mesh_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"

	"github.com/shipkit/shipkit/mesh"
	"github.com/shipkit/shipkit/mesh/gateway"
	"github.com/shipkit/shipkit/mesh/istio"
	"github.com/shipkit/shipkit/mesh/replicas"
)

// TestRouterOptions: every router takes the cluster's *rest.Config and functional
// options, contacts nothing at construction, and refuses an option given a value it
// cannot use with mesh.ErrInvalidOption naming it (an empty field manager or header
// rule was silently replaced by the default, a total of 0 silently meant "the sum").
func TestRouterOptions(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:1"} // nothing listens: New must not call it
	gw := gateway.Route{Namespace: "shop", Name: "web", Stable: "web", Canary: "web-canary"}
	is := istio.Route{Namespace: "shop", VirtualService: "web", Service: "web", Stable: "v1", Canary: "v2"}
	rp := replicas.Workload{Namespace: "shop", Service: "web", Stable: "web", Canary: "web-canary"}
	newGateway := func(opts ...gateway.Option) error { _, err := gateway.New(cfg, gw, opts...); return err }
	newIstio := func(opts ...istio.Option) error { _, err := istio.New(cfg, is, opts...); return err }
	newReplicas := func(opts ...replicas.Option) error { _, err := replicas.New(cfg, rp, opts...); return err }

	require.NoError(t, newGateway())
	require.NoError(t, newGateway(gateway.WithFieldManager("team-a"), gateway.WithHeaderRule("ab-test"), gateway.WithLogger(nil)))
	require.NoError(t, newIstio())
	require.NoError(t, newIstio(istio.WithFieldManager("team-a"), istio.WithHeaderRoute("ab-test"), istio.WithLogger(nil)))
	require.NoError(t, newReplicas())
	require.NoError(t, newReplicas(replicas.WithFieldManager("team-a"), replicas.WithTotal(4), replicas.WithLogger(nil)))

	long := strings.Repeat("m", 129)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{newGateway(gateway.WithFieldManager("")), `WithFieldManager(""): want 1 to 128 printable characters`},
		{newGateway(gateway.WithFieldManager(long)), "WithFieldManager(" + `"` + long + `"): want 1 to 128`},
		{newGateway(gateway.WithFieldManager("a\nb")), `WithFieldManager("a\nb")`},
		{newGateway(gateway.WithHeaderRule("")), `WithHeaderRule(""): not a lower-case DNS subdomain`},
		{newGateway(gateway.WithHeaderRule("AB")), `WithHeaderRule("AB")`},
		{newIstio(istio.WithFieldManager("")), `WithFieldManager(""): want 1 to 128`},
		{newIstio(istio.WithHeaderRoute("a.b")), `WithHeaderRoute("a.b"): not a lower-case name`},
		{newReplicas(replicas.WithFieldManager("")), `WithFieldManager(""): want 1 to 128`},
		{newReplicas(replicas.WithTotal(0)), "WithTotal(0): want at least 1 replica"},
		{newReplicas(replicas.WithTotal(-3)), "WithTotal(-3): want at least 1 replica"},
	} {
		require.ErrorIs(t, tc.err, mesh.ErrInvalidOption, tc.want)
		assert.ErrorContains(t, tc.err, tc.want)
	}

	// Every invalid option is named at once, with the route's own errors.
	_, err := replicas.New(cfg, replicas.Workload{}, replicas.WithTotal(0), replicas.WithFieldManager(""))
	require.ErrorIs(t, err, mesh.ErrInvalidOption)
	for _, want := range []string{"WithTotal(0)", `WithFieldManager("")`, "namespace is empty"} {
		assert.ErrorContains(t, err, want)
	}

	// A nil config or client is an error, not a panic.
	_, err = gateway.New(nil, gw)
	assert.ErrorContains(t, err, "no *rest.Config")
	_, err = istio.New(nil, is)
	assert.ErrorContains(t, err, "no *rest.Config")
	_, err = replicas.New(nil, rp)
	assert.ErrorContains(t, err, "no *rest.Config")
	_, err = gateway.NewWithClient(nil, gw)
	assert.ErrorContains(t, err, "no client")
	_, err = istio.NewWithClient(nil, is)
	assert.ErrorContains(t, err, "no client")
	_, err = replicas.NewWithClient(nil, rp)
	assert.ErrorContains(t, err, "no client")
}
