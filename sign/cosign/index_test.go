package cosign_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// multiArch is an image index pushed to an in-process registry: one image per
// platform, and a BuildKit-style attestation manifest (platform unknown/unknown)
// that is not a platform image.
type multiArch struct {
	index     name.Digest
	platforms map[string]v1.Hash // "linux/amd64" → image digest
	attManif  v1.Hash            // the attestation manifest's digest
}

func pushMultiArch(t *testing.T, host string, platforms ...string) multiArch {
	t.Helper()
	out := multiArch{platforms: map[string]v1.Hash{}}
	var adds []mutate.IndexAddendum
	for _, p := range platforms {
		img, err := random.Image(256, 1)
		require.NoError(t, err)
		pl, err := v1.ParsePlatform(p)
		require.NoError(t, err)
		h, err := img.Digest()
		require.NoError(t, err)
		out.platforms[p] = h
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: pl}})
	}
	att, err := random.Image(64, 1)
	require.NoError(t, err)
	out.attManif, err = att.Digest()
	require.NoError(t, err)
	adds = append(adds, mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
		Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
		Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest"},
	}})
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	repo, err := name.NewRepository(host + "/team/multi")
	require.NoError(t, err)
	require.NoError(t, remote.WriteIndex(repo.Tag("v1"), idx))
	out.index = digestOf(t, repo, idx)
	return out
}

// vulnReport returns a vulnerability predicate, as cosign attest --type vuln
// writes it, whose report names the platform it was scanned for.
func vulnReport(platform string) sign.Predicate {
	body := fmt.Sprintf(`{"invocation":{"uri":"","event_id":"","builder.id":""},"scanner":{"uri":"pkg:golang/github.com/shipkit/shipkit","version":"test","db":{"uri":"","version":""},"result":{"target":%q,"findings":[]}},"metadata":{"scanStartedOn":"2026-01-01T00:00:00Z","scanFinishedOn":"2026-01-01T00:01:00Z"}}`, platform)
	return sign.Predicate{Type: sign.PredicateVuln, Body: json.RawMessage(body)}
}

func sbomFor(platform string) sign.Predicate {
	return sign.SPDX([]byte(fmt.Sprintf(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":%q,"packages":[]}`, platform)))
}

// TestMultiArch signs an index (recursively), attests an SBOM and a vulnerability
// report to each platform image through the index's digest alone (the predicate's
// Subject) and provenance to the index, and verifies the index: each platform comes
// back with its own attestations, the attestation manifest is not a platform, and
// a policy that requires an SBOM denies the index when one platform has none,
// naming that platform.
func TestMultiArch(t *testing.T) {
	ctx := context.Background()
	host := newRegistry(t)
	ma := pushMultiArch(t, host, "linux/arm64", "linux/amd64")
	s := newSigner(t, trusted)
	require.NoError(t, s.Sign(ctx, ma.index, sign.WithRecursive()))
	_, _, prov := predicates(t, sourceRepo)
	require.NoError(t, s.Attest(ctx, ma.index, prov))
	for p, h := range ma.platforms {
		for _, pred := range []sign.Predicate{sbomFor(p), vulnReport(p)} {
			pred.Subject = h
			require.NoError(t, s.Attest(ctx, ma.index, pred))
		}
	}

	policy := sign.Policy{TrustedKeys: []sign.TrustedKey{trusted.trustedKey()},
		RequiredPredicates: []string{sign.PredicateSPDX, sign.PredicateVuln, sign.PredicateSLSAProvenance}}
	got, err := newVerifier(t, policy).Verify(ctx, ma.index)
	require.NoError(t, err)
	assert.Equal(t, []string{"trusted"}, got.Signers)
	require.Len(t, got.Attestations, 1, "the index's own: provenance")
	assert.Equal(t, sign.PredicateSLSAProvenance, got.Attestations[0].PredicateType)
	require.Len(t, got.Platforms, 2, "the attestation manifest is not a platform image")
	for i, want := range []string{"linux/amd64", "linux/arm64"} { // sorted by platform
		pv := got.Platforms[i]
		require.NotNil(t, pv.Platform)
		assert.Equal(t, want, pv.Platform.String())
		assert.Equal(t, ma.index.Context().Digest(ma.platforms[want].String()), pv.Digest)
		require.Len(t, pv.Attestations, 2)
		assert.Equal(t, sign.PredicateVuln, pv.Attestations[0].PredicateType)
		assert.Contains(t, string(pv.Attestations[0].Predicate), `"target":"`+want+`"`, "each platform's own report")
		assert.Equal(t, sign.PredicateSPDX, pv.Attestations[1].PredicateType)
		assert.Contains(t, string(pv.Attestations[1].Predicate), `"name":"`+want+`"`)
	}

	// A platform without its SBOM: the index is denied for that platform only.
	ma2 := pushMultiArch(t, host, "linux/arm64", "linux/amd64")
	require.NoError(t, s.Sign(ctx, ma2.index, sign.WithRecursive()))
	require.NoError(t, s.Attest(ctx, ma2.index, prov))
	for p, h := range ma2.platforms {
		preds := []sign.Predicate{vulnReport(p)}
		if p == "linux/amd64" {
			preds = append(preds, sbomFor(p))
		}
		for _, pred := range preds {
			pred.Subject = h
			require.NoError(t, s.Attest(ctx, ma2.index, pred))
		}
	}
	_, err = newVerifier(t, policy).Verify(ctx, ma2.index)
	var denied *sign.DeniedError
	require.ErrorAs(t, err, &denied)
	require.Len(t, denied.Reasons, 1, "%v", denied.Reasons)
	assert.Equal(t, sign.ReasonMissingAttestation, denied.Reasons[0].Code)
	assert.Equal(t, "linux/arm64: no attestation of predicate type "+sign.PredicateSPDX+" by a trusted signer", denied.Reasons[0].Message)

	// The platform images verify on their own by digest too (signed recursively).
	pv, err := newVerifier(t, sign.Policy{TrustedKeys: []sign.TrustedKey{trusted.trustedKey()},
		RequiredPredicates: []string{sign.PredicateSPDX}}).Verify(ctx, ma.index.Context().Digest(ma.platforms["linux/arm64"].String()))
	require.NoError(t, err)
	assert.Empty(t, pv.Platforms)
	assert.Len(t, pv.Attestations, 2)
}

// TestAttestSubjectNotInIndex checks that a predicate whose subject the index does
// not list (here, the index's attestation manifest is listed but another image is
// not) is refused with an error that names both, and that nothing is attached.
func TestAttestSubjectNotInIndex(t *testing.T) {
	ctx := context.Background()
	host := newRegistry(t)
	ma := pushMultiArch(t, host, "linux/amd64")
	other := pushImage(t, host, "team/multi", "other")
	s := newSigner(t, trusted)

	pred := sbomFor("linux/amd64")
	pred.Subject, _ = v1.NewHash(other.DigestStr())
	err := s.Attest(ctx, ma.index, pred)
	require.ErrorIs(t, err, cosign.ErrNotInIndex)
	assert.Contains(t, err.Error(), ma.index.String())
	assert.Contains(t, err.Error(), other.DigestStr())
	_, err = newVerifier(t, sign.Policy{TrustedKeys: []sign.TrustedKey{trusted.trustedKey()},
		RequiredPredicates: []string{sign.PredicateSPDX}}).Verify(ctx, other)
	var denied *sign.DeniedError
	require.ErrorAs(t, err, &denied)
	assert.True(t, denied.Has(sign.ReasonMissingAttestation), "nothing was attested to the other image")

	// Through an image that is not an index.
	err = s.Attest(ctx, other, func() sign.Predicate { p := sbomFor("x"); p.Subject = ma.platforms["linux/amd64"]; return p }())
	require.ErrorIs(t, err, cosign.ErrNotInIndex)
	assert.Contains(t, err.Error(), "is not an image index")
}

// TestMultiArchLimits checks that an index listing more platform images than
// WithMaxPlatforms is denied without reading any, with the count.
func TestMultiArchLimits(t *testing.T) {
	ctx := context.Background()
	host := newRegistry(t)
	ma := pushMultiArch(t, host, "linux/amd64", "linux/arm64", "linux/s390x")
	require.NoError(t, newSigner(t, trusted).Sign(ctx, ma.index))
	p := sign.Policy{TrustedKeys: []sign.TrustedKey{trusted.trustedKey()}}
	_, err := newVerifier(t, p, cosign.WithMaxPlatforms(2)).Verify(ctx, ma.index)
	var denied *sign.DeniedError
	require.ErrorAs(t, err, &denied)
	assert.Contains(t, err.Error(), "the image index lists 3 platform images, more than the limit of 2 (cosign.WithMaxPlatforms); none was read")
	got, err := newVerifier(t, p, cosign.WithMaxPlatforms(3)).Verify(ctx, ma.index)
	require.NoError(t, err)
	assert.Len(t, got.Platforms, 3)
}
