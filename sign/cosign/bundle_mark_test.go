package cosign_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/sign"
)

const annStatement = "dev.shipkit.sign.statement"

// referrersOf returns d's referrers.
func referrersOf(t *testing.T, d name.Digest) []v1.Descriptor {
	t.Helper()
	idx, err := remote.Referrers(d)
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	return im.Manifests
}

// markOf returns the mark the signer put on d's referrer of predicateType, and
// deletes that referrer: what remains is an image whose genuine bundle's mark an
// attacker knows (the mark is predictable: key fingerprint and statement digest).
func markOf(t *testing.T, d name.Digest, predicateType string) string {
	t.Helper()
	for _, m := range referrersOf(t, d) {
		if m.Annotations["dev.sigstore.bundle.predicateType"] == predicateType {
			mark := m.Annotations[annStatement]
			require.NotEmpty(t, mark)
			require.NoError(t, remote.Delete(d.Context().Digest(m.Digest.String())))
			require.Empty(t, referrersOf(t, d))
			return mark
		}
	}
	t.Fatalf("no referrer of %s with predicate type %s", d, predicateType)
	return ""
}

// forgeMarked pushes, as anyone with push access can, a referrer of d carrying
// the signer's mark whose bundle is garbage of the bundle media type.
func forgeMarked(t *testing.T, d name.Digest, predicateType, mark string) v1.Hash {
	t.Helper()
	desc, err := remote.Get(d)
	require.NoError(t, err)
	layer := []byte(`{"mediaType":"` + testBundleType + `"}`)
	l := static.NewLayer(layer, testBundleType)
	cfg := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	for _, x := range []v1.Layer{l, cfg} {
		require.NoError(t, remote.WriteLayer(d.Repository, x))
	}
	ld, _ := l.Digest()
	cd, _ := cfg.Digest()
	raw, err := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": types.OCIManifestSchema1, "artifactType": testBundleType,
		"config":  map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": cd, "size": 2},
		"layers":  []map[string]any{{"mediaType": testBundleType, "digest": ld, "size": len(layer)}},
		"subject": map[string]any{"mediaType": desc.MediaType, "digest": desc.Digest, "size": desc.Size},
		"annotations": map[string]string{"dev.sigstore.bundle.predicateType": predicateType,
			"dev.sigstore.bundle.content": "dsse-envelope", annStatement: mark},
	})
	require.NoError(t, err)
	h, _, err := v1.SHA256(strings.NewReader(string(raw)))
	require.NoError(t, err)
	require.NoError(t, remote.Put(d.Context().Digest(h.String()), rawManifest(raw)))
	return h
}

// TestBundleForgedMark: a referrer carrying the signer's "already signed" mark
// whose bundle is not the signer's does not make it skip (Sign, Attest), and
// WithReplace deletes the forgery, never the genuine bundle.
func TestBundleForgedMark(t *testing.T) {
	ctx := context.Background()
	s := newSigner(t, trusted)
	sbom, _, _ := predicates(t, sourceRepo)
	policy := func(preds ...string) sign.Policy {
		return sign.Policy{TrustedKeys: []sign.TrustedKey{trusted.trustedKey()}, RequiredPredicates: preds}
	}
	genuine := func(d name.Digest, forged v1.Hash, mark string) (n int) {
		for _, m := range referrersOf(t, d) {
			if m.Digest != forged && m.Annotations[annStatement] == mark {
				n++
			}
		}
		return n
	}

	t.Run("sign", func(t *testing.T) {
		d := pushImage(t, newReferrersRegistry(t), "team/app", "v1")
		require.NoError(t, s.Sign(ctx, d))
		mark := markOf(t, d, cosignSignType)
		forged := forgeMarked(t, d, cosignSignType, mark)
		require.NoError(t, s.Sign(ctx, d))
		assert.Equal(t, 1, genuine(d, forged, mark), "the signer pushed its own bundle next to the forgery")
		_, err := newVerifier(t, policy()).Verify(ctx, d)
		require.NoError(t, err)
		// Signed again: the genuine bundle (which verifies) is found, nothing is added.
		require.NoError(t, s.Sign(ctx, d))
		assert.Len(t, referrersOf(t, d), 2)
	})

	t.Run("attest with replace, forgery first", func(t *testing.T) {
		d := pushImage(t, newReferrersRegistry(t), "team/app", "v1")
		require.NoError(t, s.Attest(ctx, d, sbom))
		mark := markOf(t, d, sbom.Type)
		forged := forgeMarked(t, d, sbom.Type, mark)
		require.NoError(t, s.Sign(ctx, d))
		require.NoError(t, s.Attest(ctx, d, sbom, sign.WithReplace()))
		for _, m := range referrersOf(t, d) {
			assert.NotEqual(t, forged, m.Digest, "the forged referrer was kept as the signer's")
		}
		assert.Equal(t, 1, genuine(d, forged, mark))
		got, err := newVerifier(t, policy(sign.PredicateSPDX)).Verify(ctx, d)
		require.NoError(t, err)
		assert.Len(t, got.Attestations, 1)
	})

	t.Run("attest with replace, genuine first", func(t *testing.T) {
		d := pushImage(t, newReferrersRegistry(t), "team/app", "v1")
		require.NoError(t, s.Sign(ctx, d))
		require.NoError(t, s.Attest(ctx, d, sbom))
		var mark string
		for _, m := range referrersOf(t, d) {
			if m.Annotations["dev.sigstore.bundle.predicateType"] == sbom.Type {
				mark = m.Annotations[annStatement]
			}
		}
		require.NotEmpty(t, mark)
		forged := forgeMarked(t, d, sbom.Type, mark)
		require.NoError(t, s.Attest(ctx, d, sbom, sign.WithReplace()))
		for _, m := range referrersOf(t, d) {
			assert.NotEqual(t, forged, m.Digest, "the forged referrer was kept as the signer's")
		}
		assert.Equal(t, 1, genuine(d, forged, mark), "the genuine bundle was deleted")
		got, err := newVerifier(t, policy(sign.PredicateSPDX)).Verify(ctx, d)
		require.NoError(t, err)
		assert.Len(t, got.Attestations, 1)
	})
}
