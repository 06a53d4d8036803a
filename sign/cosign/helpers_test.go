package cosign_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// The tests' keys: generating one costs a scrypt run (tens of milliseconds), so each
// is made once per test binary.
var (
	password   = []byte("correct horse battery staple")
	trusted    = mustKey("trusted")
	trusted2   = mustKey("trusted2")
	untrusted  = mustKey("untrusted")
	sourceRepo = "https://github.com/example/app.git"
)

type testKey struct {
	name string
	pair *cosign.KeyPair
	key  *cosign.PrivateKey
}

func mustKey(name string) testKey {
	pair, err := cosign.GenerateKeyPair(password)
	if err != nil {
		panic(err)
	}
	key, err := cosign.LoadPrivateKey(pair.PrivatePEM, password)
	if err != nil {
		panic(err)
	}
	return testKey{name: name, pair: pair, key: key}
}

func (k testKey) trustedKey() sign.TrustedKey { return k.key.TrustedKey(k.name) }

// newRegistry starts an in-process registry for one test and returns its host.
func newRegistry(t testing.TB) string {
	t.Helper()
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	return host
}

// pushImage pushes a random image to host/repo:tag and returns its digest.
func pushImage(t testing.TB, host, repo, tag string, opts ...remote.Option) name.Digest {
	t.Helper()
	img, err := random.Image(256, 1)
	require.NoError(t, err)
	ref, err := name.NewTag(fmt.Sprintf("%s/%s:%s", host, repo, tag))
	require.NoError(t, err)
	require.NoError(t, remote.Write(ref, img, opts...))
	return digestOf(t, ref.Context(), img)
}

func digestOf(t testing.TB, repo name.Repository, img interface{ Digest() (v1.Hash, error) }) name.Digest {
	t.Helper()
	h, err := img.Digest()
	require.NoError(t, err)
	return repo.Digest(h.String())
}

func newSigner(t testing.TB, k testKey, opts ...cosign.Option) *cosign.Signer {
	t.Helper()
	s, err := cosign.NewSigner(k.key, opts...)
	require.NoError(t, err)
	return s
}

func newVerifier(t testing.TB, p sign.Policy, opts ...cosign.Option) *cosign.Verifier {
	t.Helper()
	v, err := cosign.NewVerifier(p, opts...)
	require.NoError(t, err)
	return v
}

// predicates returns the three predicates a pipeline attests: SBOM, vulnerability
// report, provenance from repo.
func predicates(t testing.TB, repo string, findings ...report.Finding) (sbom, vuln, prov sign.Predicate) {
	t.Helper()
	sbom = sign.SPDX([]byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"app","packages":[]}`))
	var err error
	vuln, err = sign.VulnPredicate(&report.Report{Target: "app", Findings: findings, Tool: &report.Tool{
		Name: "grype", URI: "pkg:golang/github.com/anchore/grype", Version: "v0.121.2", FinishedOn: time.Now()}})
	require.NoError(t, err)
	prov, err = sign.Provenance{
		BuilderID: "https://ci.example.com/builder", SourceRepository: repo, SourceRevision: "9f2c1e0",
		BaseImage: "gcr.io/distroless/static", BaseDigest: "sha256:" + fmt.Sprintf("%064d", 7),
		Parameters: map[string]any{"platforms": []string{"linux/amd64"}},
		StartedOn:  time.Unix(1700000000, 0), FinishedOn: time.Unix(1700000060, 0),
	}.Predicate()
	require.NoError(t, err)
	return sbom, vuln, prov
}

// signAndAttest signs d with k and attests SBOM, vulnerabilities and provenance.
func signAndAttest(t testing.TB, k testKey, d name.Digest, repo string, opts ...cosign.Option) {
	t.Helper()
	ctx := context.Background()
	s := newSigner(t, k, opts...)
	require.NoError(t, s.Sign(ctx, d, sign.WithAnnotations(map[string]string{"pipeline": "test"})))
	sbom, vuln, prov := predicates(t, repo)
	for _, p := range []sign.Predicate{sbom, vuln, prov} {
		require.NoError(t, s.Attest(ctx, d, p))
	}
}

// fullPolicy trusts k and asks for everything the issue lists.
func fullPolicy(keys ...sign.TrustedKey) sign.Policy {
	return sign.Policy{
		TrustedKeys:        keys,
		RequiredPredicates: []string{sign.PredicateSLSAProvenance, sign.PredicateVuln},
		Conditions: []sign.Condition{
			sign.SBOMExists(),
			sign.ProvenanceFrom("https://github.com/example/app"),
			sign.VulnRule{FailOn: report.High},
		},
	}
}

// countingTransport counts requests, to see what the cache saves.
type countingTransport struct {
	base http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}
