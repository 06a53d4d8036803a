package cosign_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
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
	"github.com/shipkit/shipkit/sign/cosign"
)

const (
	testBundleType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	cosignSignType = "https://sigstore.dev/cosign/sign/v1"
)

// bundleOf returns the bundle (the referrer's only layer) of d's referrer whose
// predicate type annotation is predicateType.
func bundleOf(t *testing.T, d name.Digest, predicateType string) []byte {
	t.Helper()
	idx, err := remote.Referrers(d)
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	for _, m := range im.Manifests {
		if m.Annotations["dev.sigstore.bundle.predicateType"] != predicateType {
			continue
		}
		img, err := remote.Image(d.Context().Digest(m.Digest.String()))
		require.NoError(t, err)
		ls, err := img.Layers()
		require.NoError(t, err)
		require.Len(t, ls, 1)
		rc, err := ls[0].Compressed()
		require.NoError(t, err)
		defer rc.Close()
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		return b
	}
	t.Fatalf("no referrer of %s with predicate type %s", d, predicateType)
	return nil
}

// pushReferrer pushes layer (of media type mt) as a bundle artifact whose subject is
// subject, to d's repository; ggcr adds it to the referrers tag of subject.
func pushReferrer(t *testing.T, subject name.Digest, mt string, layer []byte, predicateType string) v1.Hash {
	t.Helper()
	desc, err := remote.Get(subject)
	require.NoError(t, err)
	l := static.NewLayer(layer, types.MediaType(mt))
	cfg := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	for _, x := range []v1.Layer{l, cfg} {
		require.NoError(t, remote.WriteLayer(subject.Repository, x))
	}
	ld, _ := l.Digest()
	cd, _ := cfg.Digest()
	m := map[string]any{
		"schemaVersion": 2, "mediaType": types.OCIManifestSchema1, "artifactType": testBundleType,
		"config":      map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": cd, "size": 2},
		"layers":      []map[string]any{{"mediaType": mt, "digest": ld, "size": len(layer)}},
		"subject":     map[string]any{"mediaType": desc.MediaType, "digest": desc.Digest, "size": desc.Size},
		"annotations": map[string]string{"dev.sigstore.bundle.predicateType": predicateType, "dev.sigstore.bundle.content": "dsse-envelope"},
	}
	raw, err := json.Marshal(m)
	require.NoError(t, err)
	h, _, err := v1.SHA256(strings.NewReader(string(raw)))
	require.NoError(t, err)
	require.NoError(t, remote.Put(subject.Context().Digest(h.String()), rawManifest(raw)))
	return h
}

type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// logEntryFor returns a Rekor v1 hashedrekord log entry (JSON of the bundle's
// tlogEntries) for a signature sig over the digest digest, with an inclusion
// proof of the right shape (not a real one: key-based verification checks no
// log, but the entry must be about this bundle).
func logEntryFor(t *testing.T, sig, digest []byte, pubPEM []byte) map[string]any {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"apiVersion": "0.0.1", "kind": "hashedrekord",
		"spec": map[string]any{
			"data":      map[string]any{"hash": map[string]any{"algorithm": "sha256", "value": hex.EncodeToString(digest)}},
			"signature": map[string]any{"content": base64.StdEncoding.EncodeToString(sig), "publicKey": map[string]any{"content": base64.StdEncoding.EncodeToString(pubPEM)}},
		},
	})
	require.NoError(t, err)
	root := sha256.Sum256([]byte("root"))
	return map[string]any{
		"logIndex": "1", "logId": map[string]any{"keyId": base64.StdEncoding.EncodeToString(root[:])},
		"kindVersion":       map[string]any{"kind": "hashedrekord", "version": "0.0.1"},
		"integratedTime":    "1700000000",
		"inclusionProof":    map[string]any{"logIndex": "1", "rootHash": base64.StdEncoding.EncodeToString(root[:]), "treeSize": "2", "hashes": []string{base64.StdEncoding.EncodeToString(root[:])}, "checkpoint": map[string]any{"envelope": "rekor.sigstore.dev - 1\n2\nAAAA\n\n— rekor.sigstore.dev AAAA\n"}},
		"canonicalizedBody": base64.StdEncoding.EncodeToString(body),
	}
}

// TestBundleTamper is the tamper table of the bundle layout: each tampered
// signature or attestation is a typed, named denial, never a pass and never a
// panic.
func TestBundleTamper(t *testing.T) {
	host := newRegistry(t) // no referrers API: the referrers tag can be forged
	ctx := context.Background()
	policy := sign.Policy{TrustedKeys: []sign.TrustedKey{trusted.trustedKey()}}

	// A signed image whose bundles the cases copy.
	src := pushImage(t, host, "team/app", "src")
	require.NoError(t, newSigner(t, trusted).Sign(ctx, src))
	sigBundle := bundleOf(t, src, cosignSignType)

	tamper := func(f func(m map[string]any)) []byte {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sigBundle, &m))
		f(m)
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return b
	}

	for _, tc := range []struct {
		name    string
		setup   func(d name.Digest)
		opts    []cosign.Option
		code    sign.ReasonCode
		message string
	}{
		{name: "mismatched subject digest", code: sign.ReasonWrongSubject, message: "signed by trusted key trusted for another image",
			setup: func(d name.Digest) { pushReferrer(t, d, testBundleType, sigBundle, cosignSignType) }},
		{name: "referrer whose subject is another image", code: sign.ReasonWrongSubject, message: "a referrer of another image",
			setup: func(d name.Digest) {
				// The referrers tag of d lists src's signature referrer.
				idx, err := remote.Referrers(src)
				require.NoError(t, err)
				im, err := idx.IndexManifest()
				require.NoError(t, err)
				tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1))
				raw, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: im.Manifests})
				require.NoError(t, err)
				require.NoError(t, remote.Put(tag, rawIndex(raw)))
			}},
		{name: "truncated bundle", code: sign.ReasonMalformed, message: "not a valid sigstore bundle",
			setup: func(d name.Digest) {
				pushReferrer(t, d, testBundleType, sigBundle[:len(sigBundle)/2], cosignSignType)
			}},
		{name: "oversized bundle", code: sign.ReasonMalformed, message: "more than the limit of 64 (cosign.WithMaxPayloadSize)",
			opts:  []cosign.Option{cosign.WithMaxPayloadSize(64)},
			setup: func(d name.Digest) { pushReferrer(t, d, testBundleType, sigBundle, cosignSignType) }},
		{name: "unknown bundle media type version", code: sign.ReasonMalformed, message: "unsupported media type version (application/vnd.dev.sigstore.bundle.v0.9+json)",
			setup: func(d name.Digest) {
				pushReferrer(t, d, "application/vnd.dev.sigstore.bundle.v0.9+json", sigBundle, cosignSignType)
			}},
		{name: "unknown bundle version inside", code: sign.ReasonMalformed, message: "unsupported version",
			setup: func(d name.Digest) {
				b := tamper(func(m map[string]any) { m["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.4+json" })
				pushReferrer(t, d, testBundleType, b, cosignSignType)
			}},
		{name: "log entry for another artifact", code: sign.ReasonMalformed, message: "transparency log entry for another artifact",
			setup: func(d name.Digest) {
				// src's signature, re-signed for d by the trusted key: valid, but
				// with a log entry for another signature.
				s := newSigner(t, trusted)
				require.NoError(t, s.Sign(ctx, d))
				own := bundleOf(t, d, cosignSignType)
				// A real entry of another signature, by another key, over another digest.
				other := sha256.Sum256([]byte("another artifact"))
				k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				require.NoError(t, err)
				otherSig, err := ecdsa.SignASN1(rand.Reader, k, other[:])
				require.NoError(t, err)
				der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
				require.NoError(t, err)
				var m map[string]any
				require.NoError(t, json.Unmarshal(own, &m))
				vm := m["verificationMaterial"].(map[string]any)
				vm["tlogEntries"] = []any{logEntryFor(t, otherSig, other[:], pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}
				b, err := json.Marshal(m)
				require.NoError(t, err)
				// Replace d's referrers tag by one listing the tampered bundle only.
				h := pushReferrer(t, d, testBundleType, b, cosignSignType)
				tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1))
				idx, err := remote.Index(tag)
				require.NoError(t, err)
				im, err := idx.IndexManifest()
				require.NoError(t, err)
				var keep []v1.Descriptor
				for _, x := range im.Manifests {
					if x.Digest == h {
						keep = append(keep, x)
					}
				}
				raw, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: keep})
				require.NoError(t, err)
				require.NoError(t, remote.Put(tag, rawIndex(raw)))
			}},
		{name: "too many referrers", code: sign.ReasonMalformed, message: "more than the limit of 2 (cosign.WithMaxReferrers)",
			opts: []cosign.Option{cosign.WithMaxReferrers(2)},
			setup: func(d name.Digest) {
				s := newSigner(t, trusted)
				for i := range 3 { // three statements: identical ones are pushed once
					require.NoError(t, s.Sign(ctx, d, sign.WithAnnotations(map[string]string{"run": fmt.Sprint(i)})))
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := pushImage(t, host, "team/app", strings.ReplaceAll(tc.name, " ", "-"))
			tc.setup(d)
			_, err := newVerifier(t, policy, tc.opts...).Verify(ctx, d)
			var de *sign.DeniedError
			require.True(t, errors.As(err, &de), "want a denial, got %v", err)
			found := false
			for _, r := range de.Reasons {
				if r.Code == tc.code && strings.Contains(r.Message, tc.message) {
					found = true
				}
			}
			assert.True(t, found, "want %s %q among %s", tc.code, tc.message, fmt.Sprint(de.Reasons))
		})
	}
}

type rawIndex []byte

func (r rawIndex) RawManifest() ([]byte, error)        { return r, nil }
func (r rawIndex) MediaType() (types.MediaType, error) { return types.OCIImageIndex, nil }
