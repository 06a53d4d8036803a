package cosign_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// legacy makes a signer write cosign v2's layout, for the tests of that layout.
var legacy = cosign.WithFormat(cosign.FormatLegacy)

// newReferrersRegistry starts an in-process registry with the OCI 1.1 referrers
// API (newRegistry's has none: bundles are found through the referrers tag schema
// there, as on the distribution server).
func newReferrersRegistry(t testing.TB) string {
	t.Helper()
	host, stop, err := registry.NewInProcess(ggcr.WithReferrersSupport(true))
	require.NoError(t, err)
	t.Cleanup(stop)
	return host
}

// pathRecorder records the paths of the requests it carries.
type pathRecorder struct {
	base  http.RoundTripper
	mu    sync.Mutex
	paths []string
}

func (p *pathRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	p.mu.Lock()
	p.paths = append(p.paths, r.Method+" "+r.URL.Path)
	p.mu.Unlock()
	return p.base.RoundTrip(r)
}

func (p *pathRecorder) saw(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, q := range p.paths {
		if q == s {
			return true
		}
	}
	return false
}

// TestBundleRoundTrip signs and attests in bundle form (the default) and verifies,
// on a registry with the referrers API and on one without (the referrers tag
// schema), and checks which discovery path each took and that no legacy tag was
// written.
func TestBundleRoundTrip(t *testing.T) {
	for name, host := range map[string]string{"referrers API": newReferrersRegistry(t), "tag schema": newRegistry(t)} {
		t.Run(name, func(t *testing.T) {
			d := pushImage(t, host, "team/app", "v1")
			signAndAttest(t, trusted, d, sourceRepo)

			_, err := remote.Head(d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig"))
			require.Error(t, err, "a bundle-form signer writes no .sig tag")

			rec := &pathRecorder{base: http.DefaultTransport}
			got, err := newVerifier(t, fullPolicy(trusted.trustedKey()), cosign.WithTransport(rec)).Verify(context.Background(), d)
			require.NoError(t, err)
			assert.Equal(t, []string{"trusted"}, got.Signers)
			require.Len(t, got.Attestations, 3)
			assert.Equal(t, sign.PredicateSPDX, got.Attestations[2].PredicateType, "%v", got.Attestations)
			assert.True(t, rec.saw("GET /v2/team/app/referrers/"+d.DigestStr()), "asked the referrers API")
			tagPath := "/manifests/" + strings.Replace(d.DigestStr(), ":", "-", 1)
			if name == "tag schema" {
				assert.True(t, rec.saw("GET /v2/team/app"+tagPath), "fell back to the referrers tag")
			} else {
				assert.False(t, rec.saw("GET /v2/team/app"+tagPath), "the referrers API answered")
			}

			// Another key: denied, named.
			_, err = newVerifier(t, fullPolicy(trusted2.trustedKey())).Verify(context.Background(), d)
			var de *sign.DeniedError
			require.True(t, errors.As(err, &de), "%v", err)
			assert.Contains(t, codes(de), sign.ReasonUntrustedSignature)
		})
	}
}

// TestBothLayouts verifies an image signed in the legacy layout by one key and in
// bundle form by another against a threshold of two: one policy judges both.
func TestBothLayouts(t *testing.T) {
	host := newReferrersRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	ctx := context.Background()
	require.NoError(t, newSigner(t, trusted, cosign.WithFormat(cosign.FormatLegacy)).Sign(ctx, d))
	require.NoError(t, newSigner(t, trusted2).Sign(ctx, d))
	sbom, _, _ := predicates(t, sourceRepo)
	require.NoError(t, newSigner(t, trusted2, cosign.WithFormat(cosign.FormatLegacy)).Attest(ctx, d, sbom))
	p := sign.Policy{TrustedKeys: []sign.TrustedKey{trusted.trustedKey(), trusted2.trustedKey()}, Threshold: 2,
		RequiredPredicates: []string{sign.PredicateSPDX}}
	got, err := newVerifier(t, p).Verify(ctx, d)
	require.NoError(t, err)
	assert.Equal(t, []string{"trusted", "trusted2"}, got.Signers)
	assert.Len(t, got.Attestations, 1)
}

func codes(de *sign.DeniedError) []sign.ReasonCode {
	var out []sign.ReasonCode
	for _, r := range de.Reasons {
		out = append(out, r.Code)
	}
	return out
}

// TestBundleSignTwice signs and attests an image twice with the same key and
// statement: the registry keeps one referrer of each (as the legacy layout keeps
// one identical signature); another statement (annotations) adds one.
func TestBundleSignTwice(t *testing.T) {
	host := newReferrersRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	ctx := context.Background()
	s := newSigner(t, trusted)
	sbom, _, _ := predicates(t, sourceRepo)
	for range 2 {
		require.NoError(t, s.Sign(ctx, d))
		require.NoError(t, s.Attest(ctx, d, sbom))
	}
	count := func() int {
		idx, err := remote.Referrers(d)
		require.NoError(t, err)
		im, err := idx.IndexManifest()
		require.NoError(t, err)
		return len(im.Manifests)
	}
	assert.Equal(t, 2, count())
	require.NoError(t, s.Sign(ctx, d, sign.WithAnnotations(map[string]string{"run": "2"})))
	assert.Equal(t, 3, count())
	got, err := newVerifier(t, sign.Policy{TrustedKeys: []sign.TrustedKey{trusted.trustedKey()}, RequiredPredicates: []string{sign.PredicateSPDX}}).Verify(ctx, d)
	require.NoError(t, err)
	assert.Len(t, got.Attestations, 1)
}
