package gate_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// TestRegistries: an image from a registry outside the allow-list, or one that
// would be read over plain HTTP without being listed as insecure, is denied and
// never verified.
func TestRegistries(t *testing.T) {
	pinned := func(repo string) string { return repo + "@" + digestA }
	for _, tt := range []struct {
		name  string
		reg   gate.Registries
		image string
		code  string // "" allowed (and verified)
	}{
		{"host", gate.Registries{Hosts: []string{"registry.example"}}, pinned("registry.example/app"), ""},
		{"other host", gate.Registries{Hosts: []string{"registry.example"}}, pinned("evil.example/app"), "registry-not-allowed"},
		{"other port", gate.Registries{Hosts: []string{"registry.example"}}, pinned("registry.example:5000/app"), "registry-not-allowed"},
		{"port 443 is the default", gate.Registries{Hosts: []string{"registry.example"}}, pinned("registry.example:443/app"), ""},
		{"host with port", gate.Registries{Hosts: []string{"registry.example:5000"}}, pinned("registry.example:5000/app"), ""},
		{"wildcard", gate.Registries{Hosts: []string{"*.example.com"}}, pinned("a.b.example.com/app"), ""},
		{"wildcard is below the domain", gate.Registries{Hosts: []string{"*.example.com"}}, pinned("example.com/app"), "registry-not-allowed"},
		{"wildcard does not match a suffix", gate.Registries{Hosts: []string{"*.example.com"}}, pinned("evilexample.com/app"), "registry-not-allowed"},
		{"docker.io", gate.Registries{Hosts: []string{"docker.io"}}, pinned("nginx"), ""},
		{"case", gate.Registries{Hosts: []string{"Registry.Example"}}, pinned("registry.example/app"), ""},
		{"network", gate.Registries{CIDRs: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}, pinned("203.0.113.7:5000/app"), ""},
		{"outside the network", gate.Registries{CIDRs: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}, pinned("198.51.100.7/app"), "registry-not-allowed"},
		{"private network is plain HTTP", gate.Registries{CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, pinned("10.1.2.3:5000/app"), "insecure-registry"},
		{"listed as insecure", gate.Registries{Insecure: []string{"10.1.2.3:5000"}}, pinned("10.1.2.3:5000/app"), ""},
		{"loopback is plain HTTP", gate.Registries{Hosts: []string{"127.0.0.1:5000"}}, pinned("127.0.0.1:5000/app"), "insecure-registry"},
		{"*.localhost is plain HTTP", gate.Registries{Hosts: []string{"registry.localhost"}}, pinned("registry.localhost/app"), "insecure-registry"},
		{"no registry allowed", gate.Registries{}, pinned("ghcr.io/app"), "registry-not-allowed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := &fakeVerifier{verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: verified()}}
			g, err := gate.New(gate.WithVerifier(v), gate.WithRegistries(tt.reg))
			require.NoError(t, err)
			d, err := g.Check(t.Context(), []*unstructured.Unstructured{deployment("web", tt.image)})
			require.NoError(t, err)
			if tt.code == "" {
				assert.True(t, d.Allowed(), "%s", d)
				assert.Len(t, v.calls, 1)
				return
			}
			require.Len(t, d.Reasons, 1, "%s", d)
			assert.EqualValues(t, tt.code, d.Reasons[0].Code)
			assert.Empty(t, v.calls, "the verifier is never called for a refused registry")
			t.Log(d)
		})
	}
}

func TestRegistriesInvalid(t *testing.T) {
	for _, r := range []gate.Registries{
		{Hosts: []string{"https://registry.example"}},
		{Hosts: []string{"registry.example/path"}},
		{Hosts: []string{""}},
		{Hosts: []string{"*.example.com:5000"}},
		{Insecure: []string{"http://10.0.0.1"}},
		{CIDRs: []netip.Prefix{{}}},
	} {
		_, err := gate.New(gate.WithRegistries(r))
		assert.Error(t, err, "%+v", r)
		_, err = r.Transport(nil)
		assert.Error(t, err, "%+v", r)
	}
}

// counting serves fn and counts the requests.
func counting(t *testing.T, tls bool, fn http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	n := &atomic.Int32{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1); fn(w, r) })
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv, n
}

func ok(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }

// TestTransport: the guarded transport connects only where the allow-list says,
// whatever a redirect or a name's address says.
func TestTransport(t *testing.T) {
	target, targetHits := counting(t, true, ok)
	targetHost := strings.TrimPrefix(target.URL, "https://")
	plain, plainHits := counting(t, false, ok)
	plainHost := strings.TrimPrefix(plain.URL, "http://")
	redirector, _ := counting(t, true, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/blob", http.StatusTemporaryRedirect)
	})
	redirectorHost := strings.TrimPrefix(redirector.URL, "https://")
	port := targetHost[strings.LastIndex(targetHost, ":")+1:]
	base := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: target.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}}

	for _, tt := range []struct {
		name    string
		reg     gate.Registries
		url     string
		refused bool
	}{
		{"loopback is not public", gate.Registries{Hosts: []string{"registry.example"}}, target.URL, true},
		{"a name that resolves to loopback", gate.Registries{Hosts: []string{"registry.example"}}, "https://localhost:" + port, true},
		{"loopback in an allowed network", gate.Registries{CIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, target.URL, false},
		{"a registry named exactly", gate.Registries{Hosts: []string{targetHost}}, target.URL, false},
		{"a redirect to an inside address", gate.Registries{Hosts: []string{redirectorHost}}, redirector.URL, true},
		{"plain HTTP to a registry not listed as insecure", gate.Registries{Hosts: []string{plainHost}}, plain.URL, true},
		{"plain HTTP to an insecure registry", gate.Registries{Insecure: []string{plainHost}}, plain.URL, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := targetHits.Load() + plainHits.Load()
			rt, err := tt.reg.Transport(base)
			require.NoError(t, err)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, tt.url, nil)
			require.NoError(t, err)
			resp, err := (&http.Client{Transport: rt}).Do(req)
			if !tt.refused {
				require.NoError(t, err)
				_ = resp.Body.Close()
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				return
			}
			var refused *gate.RefusedError
			require.True(t, errors.As(err, &refused), "%v", err)
			t.Log(err)
			assert.Equal(t, before, targetHits.Load()+plainHits.Load(), "no request reached the refused address")
		})
	}
}

// TestVerifyErrorHidesBody: a registry that answers with an error page is a failure
// to decide whose Failure names the status and holds none of the page; the cause
// (for logs) keeps it.
func TestVerifyErrorHidesBody(t *testing.T) {
	page := "INTERNAL-ADMIN-PAGE " + strings.Repeat("x", 25<<10)
	srv, hits := counting(t, false, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, page)
	})
	host := strings.TrimPrefix(srv.URL, "http://")
	reg := gate.Registries{Insecure: []string{host}}
	rt, err := reg.Transport(nil)
	require.NoError(t, err)
	pair, err := cosign.GenerateKeyPair([]byte("pw"))
	require.NoError(t, err)
	key, err := cosign.LoadPrivateKey(pair.PrivatePEM, []byte("pw"))
	require.NoError(t, err)
	verifier, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{key.TrustedKey("ci")}}, cosign.WithTransport(rt))
	require.NoError(t, err)
	g, err := gate.New(gate.WithVerifier(verifier), gate.WithRegistries(reg))
	require.NoError(t, err)

	_, err = g.Check(t.Context(), []*unstructured.Unstructured{deployment("web", host+"/app@"+digestA)})
	var ve *gate.VerifyError
	require.True(t, errors.As(err, &ve), "%v", err)
	assert.Equal(t, "the registry answered HTTP 403", ve.Failure)
	assert.Equal(t, host+"/app@"+digestA, ve.Image.String())
	assert.Positive(t, hits.Load())
}

// TestPlainHTTPRefusedByDefault: a gate with a verifier and no allow-list denies an
// image that go-containerregistry would read over plain HTTP (loopback, localhost,
// *.localhost, private addresses) with insecure-registry, and no request reaches
// the registry; HTTPS registries are still verified. Without a verifier nothing is
// fetched, so nothing is refused.
func TestPlainHTTPRefusedByDefault(t *testing.T) {
	srv, hits := counting(t, false, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, "INTERNAL-ADMIN-PAGE")
	})
	host := strings.TrimPrefix(srv.URL, "http://")
	port := host[strings.LastIndex(host, ":")+1:]
	pair, err := cosign.GenerateKeyPair([]byte("pw"))
	require.NoError(t, err)
	key, err := cosign.LoadPrivateKey(pair.PrivatePEM, []byte("pw"))
	require.NoError(t, err)
	verifier, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{key.TrustedKey("ci")}})
	require.NoError(t, err)
	g, err := gate.New(gate.WithVerifier(verifier))
	require.NoError(t, err)

	for _, image := range []string{
		host + "/app@" + digestA,
		"localhost:" + port + "/app@" + digestA,
		"registry.localhost:" + port + "/app@" + digestA,
		"[::1]:" + port + "/app@" + digestA,
		"10.1.2.3:5000/app@" + digestA,
		"192.168.0.1/app@" + digestA,
	} {
		t.Run(image, func(t *testing.T) {
			d, err := g.Check(t.Context(), []*unstructured.Unstructured{deployment("web", image)})
			require.NoError(t, err)
			require.Len(t, d.Reasons, 1, "%s", d)
			assert.Equal(t, gate.ReasonInsecureRegistry, d.Reasons[0].Code)
			assert.Contains(t, d.Reasons[0].Message, "plain HTTP")
			assert.Zero(t, hits.Load(), "the registry was contacted")
		})
	}

	t.Run("HTTPS registries are verified", func(t *testing.T) {
		v := &fakeVerifier{verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: verified()}}
		g, err := gate.New(gate.WithVerifier(v))
		require.NoError(t, err)
		d, err := g.Check(t.Context(), []*unstructured.Unstructured{deployment("web", "ghcr.io/team/app@"+digestA)})
		require.NoError(t, err)
		assert.True(t, d.Allowed(), "%s", d)
	})
	t.Run("no verifier reads nothing", func(t *testing.T) {
		g, err := gate.New()
		require.NoError(t, err)
		d, err := g.Check(t.Context(), []*unstructured.Unstructured{deployment("web", host+"/app@"+digestA)})
		require.NoError(t, err)
		assert.True(t, d.Allowed(), "%s", d)
	})
}
