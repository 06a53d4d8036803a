package cosign_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/empty"
	cmutate "github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/cosign/v2/pkg/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

func TestSignAttestVerify(t *testing.T) {
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	signAndAttest(t, trusted, d, sourceRepo)

	v := newVerifier(t, fullPolicy(trusted.trustedKey()))
	got, err := v.Verify(context.Background(), d)
	require.NoError(t, err)
	assert.Equal(t, d, got.Digest)
	assert.Equal(t, []string{"trusted"}, got.Signers)
	var types []string
	for _, a := range got.Attestations {
		types = append(types, a.PredicateType)
		assert.Equal(t, "trusted", a.Signer)
		assert.True(t, json.Valid(a.Predicate))
	}
	assert.Equal(t, []string{sign.PredicateVuln, sign.PredicateSLSAProvenance, sign.PredicateSPDX}, types, "sorted by type")
}

func TestSignRefusesTagAndMissingImage(t *testing.T) {
	host := newRegistry(t)
	s := newSigner(t, trusted)
	err := s.Sign(context.Background(), name.Digest{})
	require.ErrorIs(t, err, sign.ErrNotDigest)
	assert.Contains(t, err.Error(), "resolve it to a digest first")

	_, err = sign.ParseDigest(host + "/team/app:v1")
	require.ErrorIs(t, err, sign.ErrNotDigest)
	assert.Contains(t, err.Error(), "is a tag, not a digest: resolve the tag to a digest first")

	missing, err := name.NewDigest(host + "/team/app@sha256:" + strings.Repeat("a", 64))
	require.NoError(t, err)
	err = s.Sign(context.Background(), missing)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "image not found in the registry")
}

// attack sets up one attack on the image d in host and returns the digest to verify.
type attack func(t *testing.T, host string, d name.Digest) name.Digest

// TestAttacks runs each attack of the issue against a policy that trusts one key and
// asks for provenance from the right repository, a vulnerability report and an SBOM.
// Every attack must be denied with the reason named, and none may panic.
func TestAttacks(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		attack attack
		code   sign.ReasonCode
		text   string
	}{
		{"unsigned image", func(t *testing.T, _ string, d name.Digest) name.Digest { return d },
			sign.ReasonUnsigned, "no signature"},
		{"signed with another key", func(t *testing.T, _ string, d name.Digest) name.Digest {
			signAndAttest(t, untrusted, d, sourceRepo, legacy)
			return d
		}, sign.ReasonUntrustedSignature, "not signed by a trusted key"},
		{"signature copied onto another digest", func(t *testing.T, host string, d name.Digest) name.Digest {
			signAndAttest(t, trusted, d, sourceRepo, legacy)
			other := pushImage(t, host, "team/app", "other")
			copyTag(t, d, other, ociremote.SignatureTag)
			copyTag(t, d, other, ociremote.AttestationTag)
			return other
		}, sign.ReasonWrongSubject, "not this image (copied from another digest?)"},
		{"content changed after signing behind the same tag", func(t *testing.T, host string, d name.Digest) name.Digest {
			signAndAttest(t, trusted, d, sourceRepo, legacy)
			pushImage(t, host, "team/app", "v1") // the tag now points to other content
			tag, err := name.NewTag(host + "/team/app:v1")
			require.NoError(t, err)
			desc, err := remote.Head(tag)
			require.NoError(t, err)
			require.NotEqual(t, d.DigestStr(), desc.Digest.String())
			return tag.Context().Digest(desc.Digest.String())
		}, sign.ReasonUnsigned, "no signature"},
		{"attestation predicate altered", func(t *testing.T, _ string, d name.Digest) name.Digest {
			signAndAttest(t, trusted, d, sourceRepo, legacy)
			alterAttestations(t, d, func(st map[string]any) {
				if st["predicateType"] == sign.PredicateSLSAProvenance {
					st["predicate"].(map[string]any)["buildDefinition"].(map[string]any)["externalParameters"].(map[string]any)["source"] =
						map[string]any{"repository": "https://github.com/example/app", "revision": "evil"}
				}
			})
			return d
		}, sign.ReasonUntrustedAttestation, "attestation of https://slsa.dev/provenance/v1 is not signed by a trusted key (signed by another key, or altered after signing)"},
		{"required attestation missing", func(t *testing.T, _ string, d name.Digest) name.Digest {
			require.NoError(t, newSigner(t, trusted, legacy).Sign(context.Background(), d))
			return d
		}, sign.ReasonMissingAttestation, "no attestation of predicate type https://slsa.dev/provenance/v1 by a trusted signer"},
		{"attestation signed by an untrusted key", func(t *testing.T, _ string, d name.Digest) name.Digest {
			require.NoError(t, newSigner(t, trusted, legacy).Sign(context.Background(), d))
			_, vuln, prov := predicates(t, sourceRepo)
			s := newSigner(t, untrusted, legacy)
			require.NoError(t, s.Attest(context.Background(), d, prov))
			require.NoError(t, s.Attest(context.Background(), d, vuln))
			return d
		}, sign.ReasonUntrustedAttestation, "attestation of https://slsa.dev/provenance/v1 is not signed by a trusted key"},
		{"provenance from another source repository", func(t *testing.T, _ string, d name.Digest) name.Digest {
			signAndAttest(t, trusted, d, "https://github.com/evil/app.git", legacy)
			return d
		}, sign.ReasonCondition, "names source https://github.com/evil/app.git, want https://github.com/example/app"},
		{"vulnerability at or above High", func(t *testing.T, _ string, d name.Digest) name.Digest {
			s := newSigner(t, trusted, legacy)
			require.NoError(t, s.Sign(context.Background(), d))
			sbom, _, prov := predicates(t, sourceRepo)
			_, vuln, _ := predicates(t, sourceRepo, report.Finding{ID: "CVE-2026-1", Package: "openssl", Version: "3.0.1", Severity: report.Critical})
			for _, p := range []sign.Predicate{sbom, vuln, prov} {
				require.NoError(t, s.Attest(context.Background(), d, p))
			}
			return d
		}, sign.ReasonVulnerable, "1 finding(s) at or above High: CVE-2026-1 (Critical, openssl@3.0.1)"},
		{"truncated signature payload", func(t *testing.T, _ string, d name.Digest) name.Digest {
			signAndAttest(t, trusted, d, sourceRepo, legacy)
			replaceSignature(t, d, func(payload []byte, b64 string) ([]byte, string) { return payload[:len(payload)/2], b64 })
			return d
		}, sign.ReasonMalformed, "payload is not a cosign signature payload"},
		{"garbage signature value", func(t *testing.T, _ string, d name.Digest) name.Digest {
			signAndAttest(t, trusted, d, sourceRepo, legacy)
			replaceSignature(t, d, func(payload []byte, _ string) ([]byte, string) { return payload, "%%garbage%%" })
			return d
		}, sign.ReasonMalformed, "signature value is not base64"},
		{"garbage attestation payload", func(t *testing.T, _ string, d name.Digest) name.Digest {
			require.NoError(t, newSigner(t, trusted, legacy).Sign(context.Background(), d))
			att, err := static.NewAttestation([]byte("\x00\xffnot json"), static.WithLayerMediaType(types.DssePayloadType))
			require.NoError(t, err)
			writeLayers(t, d, ociremote.AttestationTag, att)
			return d
		}, sign.ReasonMalformed, "not a DSSE envelope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := newRegistry(t)
			d := pushImage(t, host, "team/app", "v1")
			target := tc.attack(t, host, d)
			_, err := newVerifier(t, fullPolicy(trusted.trustedKey())).Verify(ctx, target)
			require.ErrorIs(t, err, sign.ErrDenied)
			var denied *sign.DeniedError
			require.ErrorAs(t, err, &denied)
			assert.True(t, denied.Has(tc.code), "want reason %s in %v", tc.code, denied.Reasons)
			assert.Contains(t, err.Error(), tc.text)
			t.Log(err)
		})
	}
}

// TestDeniedListsEveryReason checks that an unsigned image with nothing attested is
// denied for the signature, each required predicate and each condition at once.
func TestDeniedListsEveryReason(t *testing.T) {
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	_, err := newVerifier(t, fullPolicy(trusted.trustedKey())).Verify(context.Background(), d)
	var denied *sign.DeniedError
	require.ErrorAs(t, err, &denied)
	var codes []sign.ReasonCode
	for _, r := range denied.Reasons {
		codes = append(codes, r.Code)
	}
	assert.Equal(t, []sign.ReasonCode{sign.ReasonUnsigned, sign.ReasonMissingAttestation, sign.ReasonMissingAttestation,
		sign.ReasonMissingAttestation, sign.ReasonMissingAttestation, sign.ReasonNoReport}, codes)
}

func TestThreshold(t *testing.T) {
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	ctx := context.Background()
	require.NoError(t, newSigner(t, trusted).Sign(ctx, d))
	require.NoError(t, newSigner(t, untrusted).Sign(ctx, d))
	keys := []sign.TrustedKey{trusted.trustedKey(), trusted2.trustedKey()}

	// One of two trusted keys is enough by default; the untrusted signature is ignored.
	got, err := newVerifier(t, sign.Policy{TrustedKeys: keys}).Verify(ctx, d)
	require.NoError(t, err)
	assert.Equal(t, []string{"trusted"}, got.Signers)

	_, err = newVerifier(t, sign.Policy{TrustedKeys: keys, Threshold: 2}).Verify(ctx, d)
	var denied *sign.DeniedError
	require.ErrorAs(t, err, &denied)
	assert.True(t, denied.Has(sign.ReasonThreshold))
	assert.Contains(t, err.Error(), "signed by 1 of the 2 trusted signers required (trusted)")

	require.NoError(t, newSigner(t, trusted2).Sign(ctx, d))
	got, err = newVerifier(t, sign.Policy{TrustedKeys: keys, Threshold: 2}).Verify(ctx, d)
	require.NoError(t, err)
	assert.Equal(t, []string{"trusted", "trusted2"}, got.Signers)

	_, err = cosign.NewVerifier(sign.Policy{TrustedKeys: keys, Threshold: 3})
	assert.ErrorContains(t, err, "threshold 3 cannot be met by 2 distinct trusted signers")
}

// TestIndex signs an image index and its images, attests each, and verifies the
// index and every platform image by digest.
func TestIndex(t *testing.T) {
	host := newRegistry(t)
	ctx := context.Background()
	idx, err := random.Index(128, 1, 2)
	require.NoError(t, err)
	repo, err := name.NewRepository(host + "/team/multi")
	require.NoError(t, err)
	require.NoError(t, remote.WriteIndex(repo.Tag("v1"), idx))
	d := digestOf(t, repo, idx)

	s := newSigner(t, trusted)
	require.NoError(t, s.Sign(ctx, d, sign.WithRecursive()))
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	all := []name.Digest{d}
	for _, m := range im.Manifests {
		all = append(all, repo.Digest(m.Digest.String()))
	}
	sbom, vuln, prov := predicates(t, sourceRepo)
	for _, dd := range all {
		for _, p := range []sign.Predicate{sbom, vuln, prov} {
			require.NoError(t, s.Attest(ctx, dd, p))
		}
	}
	v := newVerifier(t, fullPolicy(trusted.trustedKey()))
	for _, dd := range all {
		got, err := v.Verify(ctx, dd)
		require.NoError(t, err, dd.String())
		assert.Len(t, got.Attestations, 3)
	}
}

func TestAttestReplace(t *testing.T) {
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	ctx := context.Background()
	s := newSigner(t, trusted)
	require.NoError(t, s.Sign(ctx, d))
	_, _, prov := predicates(t, "https://github.com/evil/app")
	require.NoError(t, s.Attest(ctx, d, prov))
	_, _, prov = predicates(t, sourceRepo)
	require.NoError(t, s.Attest(ctx, d, prov, sign.WithReplace()))
	got, err := newVerifier(t, sign.Policy{TrustedKeys: []sign.TrustedKey{trusted.trustedKey()},
		Conditions: []sign.Condition{sign.ProvenanceFrom(sourceRepo)}}).Verify(ctx, d)
	require.NoError(t, err)
	assert.Len(t, got.Attestations, 1)

	assert.ErrorContains(t, s.Attest(ctx, d, sign.Predicate{Type: "x", Body: []byte("garbage")}), "is not a JSON object")
}

// TestCache checks that a second verification of a digest asks the registry nothing,
// that concurrent verifications share one, and that another policy is not served a
// verdict made under the first.
func TestCache(t *testing.T) {
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	signAndAttest(t, trusted, d, sourceRepo)
	ct := &countingTransport{base: remote.DefaultTransport}
	cache := sign.NewCache()
	v := newVerifier(t, fullPolicy(trusted.trustedKey()), cosign.WithTransport(ct), cosign.WithCache(cache))

	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = v.Verify(ctx, d) }()
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	first := ct.n.Load()
	require.Positive(t, first)

	_, err := v.Verify(ctx, d)
	require.NoError(t, err)
	assert.Equal(t, first, ct.n.Load(), "a cached verification must not call the registry")

	// Another policy sharing the cache is judged on its own.
	strict := fullPolicy(trusted.trustedKey(), trusted2.trustedKey())
	strict.Threshold = 2
	sv := newVerifier(t, strict, cosign.WithTransport(ct), cosign.WithCache(cache))
	_, err = sv.Verify(ctx, d)
	require.ErrorIs(t, err, sign.ErrDenied)
	assert.NotContains(t, err.Error(), "cached")
	assert.Greater(t, ct.n.Load(), first)

	// A denial is kept too, for a short time, and says it is the cached one.
	denied := ct.n.Load()
	_, err = sv.Verify(ctx, d)
	require.ErrorIs(t, err, sign.ErrDenied)
	assert.Equal(t, denied, ct.n.Load(), "a cached denial must not call the registry")
	var de *sign.DeniedError
	require.ErrorAs(t, err, &de)
	assert.False(t, de.CachedAt.IsZero())
	assert.Equal(t, sign.DefaultDeniedTTL, de.CachedUntil.Sub(de.CachedAt))
	assert.Contains(t, err.Error(), d.String()+" denied by policy (cached verdict of ")

	// Without a cache every verification asks the registry.
	nc := newVerifier(t, fullPolicy(trusted.trustedKey()), cosign.WithTransport(ct), cosign.WithCache(nil))
	before := ct.n.Load()
	_, err = nc.Verify(ctx, d)
	require.NoError(t, err)
	assert.Greater(t, ct.n.Load(), before)
}

func TestVerifyRegistryErrorIsNotDenial(t *testing.T) {
	d, err := name.NewDigest("127.0.0.1:1/team/app@sha256:" + strings.Repeat("b", 64))
	require.NoError(t, err)
	_, err = newVerifier(t, fullPolicy(trusted.trustedKey())).Verify(context.Background(), d)
	require.Error(t, err)
	assert.NotErrorIs(t, err, sign.ErrDenied)
}

// copyTag copies the cosign tag (signatures or attestations) of from onto to's.
func copyTag(t *testing.T, from, to name.Digest, tagFn func(name.Reference, ...ociremote.Option) (name.Tag, error)) {
	t.Helper()
	src, err := tagFn(from)
	require.NoError(t, err)
	dst, err := tagFn(to)
	require.NoError(t, err)
	img, err := remote.Image(src)
	require.NoError(t, err)
	require.NoError(t, remote.Write(dst, img))
}

// writeLayers replaces the cosign tag of d with an image of the given layers.
func writeLayers(t *testing.T, d name.Digest, tagFn func(name.Reference, ...ociremote.Option) (name.Tag, error), layers ...oci.Signature) {
	t.Helper()
	sigs, err := cmutate.AppendSignatures(empty.Signatures(), false, layers...)
	require.NoError(t, err)
	tag, err := tagFn(d)
	require.NoError(t, err)
	require.NoError(t, remote.Write(tag, sigs))
}

// replaceSignature rewrites each signature of d with f.
func replaceSignature(t *testing.T, d name.Digest, f func(payload []byte, b64 string) ([]byte, string)) {
	t.Helper()
	tag, err := ociremote.SignatureTag(d)
	require.NoError(t, err)
	sigs, err := ociremote.Signatures(tag)
	require.NoError(t, err)
	list, err := sigs.Get()
	require.NoError(t, err)
	var out []oci.Signature
	for _, s := range list {
		payload, err := s.Payload()
		require.NoError(t, err)
		b64, err := s.Base64Signature()
		require.NoError(t, err)
		payload, b64 = f(payload, b64)
		ns, err := static.NewSignature(payload, b64)
		require.NoError(t, err)
		out = append(out, ns)
	}
	writeLayers(t, d, ociremote.SignatureTag, out...)
}

// alterAttestations rewrites the statement inside each attestation of d with f,
// keeping the envelope's signatures.
func alterAttestations(t *testing.T, d name.Digest, f func(statement map[string]any)) {
	t.Helper()
	tag, err := ociremote.AttestationTag(d)
	require.NoError(t, err)
	atts, err := ociremote.Signatures(tag)
	require.NoError(t, err)
	list, err := atts.Get()
	require.NoError(t, err)
	var out []oci.Signature
	for _, a := range list {
		payload, err := a.Payload()
		require.NoError(t, err)
		var env map[string]any
		require.NoError(t, json.Unmarshal(payload, &env))
		stBytes, err := base64.StdEncoding.DecodeString(env["payload"].(string))
		require.NoError(t, err)
		var st map[string]any
		require.NoError(t, json.Unmarshal(stBytes, &st))
		f(st)
		stBytes, err = json.Marshal(st)
		require.NoError(t, err)
		env["payload"] = base64.StdEncoding.EncodeToString(stBytes)
		payload, err = json.Marshal(env)
		require.NoError(t, err)
		ann, err := a.Annotations()
		require.NoError(t, err)
		na, err := static.NewAttestation(payload, static.WithLayerMediaType(types.DssePayloadType), static.WithAnnotations(ann))
		require.NoError(t, err)
		out = append(out, na)
	}
	writeLayers(t, d, ociremote.AttestationTag, out...)
}

// pathLog records the paths of the registry requests.
type pathLog struct {
	mu    sync.Mutex
	paths []string
}

func (l *pathLog) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	l.paths = append(l.paths, r.URL.Path)
	l.mu.Unlock()
	return remote.DefaultTransport.RoundTrip(r)
}

func (l *pathLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.paths
	l.paths = nil
	return p
}

// TestVerifyReusesAuth checks that a verifier pings a repository and exchanges its
// token once, not per verification: after the first image, verifying another one of
// the same repository reads only its three manifests (its own, to see whether it is
// an index, and its .sig and .att tags'), four layers, and its referrers (the
// registry has no referrers API: the request, then the referrers tag).
func TestVerifyReusesAuth(t *testing.T) {
	host := newRegistry(t)
	d1, d2 := pushImage(t, host, "team/app", "v1"), pushImage(t, host, "team/app", "v2")
	signAndAttest(t, trusted, d1, sourceRepo, legacy)
	signAndAttest(t, trusted, d2, sourceRepo, legacy)
	log := &pathLog{}
	v := newVerifier(t, fullPolicy(trusted.trustedKey()), cosign.WithTransport(log), cosign.WithCache(nil))
	_, err := v.Verify(context.Background(), d1)
	require.NoError(t, err)
	assert.Contains(t, log.take(), "/v2/", "the first verification pings the registry")
	_, err = v.Verify(context.Background(), d2)
	require.NoError(t, err)
	paths := log.take()
	assert.NotContains(t, paths, "/v2/")
	assert.Len(t, paths, 9, "3 manifests (the image, .sig, .att), 4 layers, the referrers API and tag: %v", paths)
}
