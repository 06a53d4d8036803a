package cosign_test

import (
	"context"
	"crypto"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
	"github.com/shipkit/shipkit/sign/internal/testca"
)

const (
	workflow = "https://github.com/example/app/.github/workflows/release.yml@refs/heads/main"
	gha      = "https://token.actions.githubusercontent.com"
)

// testPKI is a root CA and an intermediate under it.
type testPKI struct{ root, inter *testca.CA }

func newPKI(t testing.TB, name string) testPKI {
	t.Helper()
	root, err := testca.NewRoot(name+" root", testca.Validity{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour)})
	require.NoError(t, err)
	inter, err := root.Intermediate(name+" intermediate", testca.Validity{NotBefore: time.Now().Add(-47 * time.Hour), NotAfter: time.Now().Add(300 * 24 * time.Hour)})
	require.NoError(t, err)
	return testPKI{root, inter}
}

// chainPEM is the chain a signer attaches: intermediate, then root.
func (p testPKI) chainPEM() []byte { return append(append([]byte(nil), p.inter.PEM...), p.root.PEM...) }

// identity trusts the workflow from GitHub's issuer under p's root.
func (p testPKI) identity() sign.TrustedIdentity {
	return sign.TrustedIdentity{Name: "release-workflow", RootsPEM: p.root.PEM, Subject: workflow, Issuer: gha}
}

// certKey returns k with a certificate from p for leaf (its PublicKey is k's).
func certKey(t testing.TB, p testPKI, k testKey, leaf testca.Leaf) (*cosign.PrivateKey, []byte) {
	t.Helper()
	leaf.PublicKey = publicKey(t, k)
	_, certPEM, err := p.inter.Issue(leaf)
	require.NoError(t, err)
	key, err := k.key.WithCertificate(certPEM, p.chainPEM())
	require.NoError(t, err)
	return key, certPEM
}

func publicKey(t testing.TB, k testKey) crypto.PublicKey {
	t.Helper()
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(k.pair.PublicPEM)
	require.NoError(t, err)
	return pub
}

var goodLeaf = testca.Leaf{URIs: []string{workflow}, Issuer: gha}

// certPolicy is fullPolicy with the identity instead of keys.
func certPolicy(ids ...sign.TrustedIdentity) sign.Policy {
	p := fullPolicy()
	p.TrustedIdentities = ids
	return p
}

// signAndAttestWith signs d with key and attests SBOM, vulnerabilities and provenance.
func signAndAttestWith(t testing.TB, key *cosign.PrivateKey, d name.Digest, opts ...cosign.Option) {
	t.Helper()
	ctx := context.Background()
	s, err := cosign.NewSigner(key, opts...)
	require.NoError(t, err)
	require.NoError(t, s.Sign(ctx, d))
	sbom, vuln, prov := predicates(t, sourceRepo)
	for _, p := range []sign.Predicate{sbom, vuln, prov} {
		require.NoError(t, s.Attest(ctx, d, p))
	}
}

func TestCertificateSignVerify(t *testing.T) {
	ours := newPKI(t, "ours")
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	key, certPEM := certKey(t, ours, trusted, goodLeaf)
	assert.Contains(t, key.String(), "with certificate for "+workflow)
	assert.Equal(t, certPEM, key.CertificatePEM())
	signAndAttestWith(t, key, d)

	got, err := newVerifier(t, certPolicy(ours.identity())).Verify(context.Background(), d)
	require.NoError(t, err)
	assert.Equal(t, []string{"release-workflow"}, got.Signers)
	require.Len(t, got.Attestations, 3)
	for _, a := range got.Attestations {
		assert.Equal(t, "release-workflow", a.Signer)
	}

	// The signature carries the certificate and the chain in cosign's annotations.
	sigs := readLayers(t, d, ociremote.SignatureTag)
	require.Len(t, sigs, 1)
	cert, err := sigs[0].Cert()
	require.NoError(t, err)
	assert.Equal(t, []string{workflow}, sign.SubjectAlternativeNames(cert))
	chain, err := sigs[0].Chain()
	require.NoError(t, err)
	require.Len(t, chain, 2)
	assert.Equal(t, ours.inter.Cert.Raw, chain[0].Raw)
	assert.Equal(t, ours.root.Cert.Raw, chain[1].Raw)

	// A key and an identity are two signers towards a threshold.
	require.NoError(t, newSigner(t, trusted2).Sign(context.Background(), d))
	both := certPolicy(ours.identity())
	both.TrustedKeys = []sign.TrustedKey{trusted2.trustedKey()}
	both.Threshold = 2
	got, err = newVerifier(t, both).Verify(context.Background(), d)
	require.NoError(t, err)
	assert.Equal(t, []string{"release-workflow", "trusted2"}, got.Signers)
}

func TestWithCertificateErrors(t *testing.T) {
	ours, theirs := newPKI(t, "ours"), newPKI(t, "theirs")
	leaf := goodLeaf
	leaf.PublicKey = publicKey(t, trusted2)
	_, otherKeysCert, err := ours.inter.Issue(leaf)
	require.NoError(t, err)
	_, err = trusted.key.WithCertificate(otherKeysCert, ours.chainPEM())
	assert.ErrorContains(t, err, "is not for this key")

	leaf.PublicKey = publicKey(t, trusted)
	_, certPEM, err := ours.inter.Issue(leaf)
	require.NoError(t, err)
	_, err = trusted.key.WithCertificate(certPEM, theirs.chainPEM())
	assert.ErrorContains(t, err, "does not chain to the root of its chain")
	_, err = trusted.key.WithCertificate([]byte("garbage"), nil)
	assert.ErrorContains(t, err, "signing certificate")
	_, err = trusted.key.WithCertificate(append(certPEM, certPEM...), nil)
	assert.ErrorContains(t, err, "2 certificates, want 1")

	// A certificate that is not valid now is refused at signing: every verifier would
	// refuse the signature.
	leaf.Validity = testca.Validity{NotBefore: time.Now().Add(-3 * time.Hour), NotAfter: time.Now().Add(-2 * time.Hour)}
	_, expiredPEM, err := ours.inter.Issue(leaf)
	require.NoError(t, err)
	key, err := trusted.key.WithCertificate(expiredPEM, ours.chainPEM())
	require.NoError(t, err)
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	err = newSignerKey(t, key).Sign(context.Background(), d)
	assert.ErrorContains(t, err, "verifiers would refuse the signature")
	err = newSignerKey(t, key).Attest(context.Background(), d, sign.SPDX([]byte(`{}`)))
	assert.ErrorContains(t, err, "verifiers would refuse the signature")
}

func newSignerKey(t testing.TB, key *cosign.PrivateKey) *cosign.Signer {
	t.Helper()
	s, err := cosign.NewSigner(key)
	require.NoError(t, err)
	return s
}

// certAttack is an attack on certificate signatures: it returns the image to verify
// against certPolicy(ours.identity()), to be denied with code and text.
type certAttack struct {
	name   string
	attack func(t *testing.T, host string, d name.Digest) name.Digest
	code   sign.ReasonCode
	text   string
	// onAttestation: the attack is on the provenance attestation, not the signature.
	onAttestation bool
}

// certAttacks are the attacks on certificate signatures.
func certAttacks(ours, theirs testPKI) []certAttack {
	return []certAttack{
		{"certificate from another root", func(t *testing.T, _ string, d name.Digest) name.Digest {
			key, _ := certKey(t, theirs, trusted, goodLeaf)
			signAndAttestWith(t, key, d)
			return d
		}, sign.ReasonUntrustedSignature, "certificate not issued under a trusted root", false},
		{"wrong identity", func(t *testing.T, _ string, d name.Digest) name.Digest {
			key, _ := certKey(t, ours, trusted, testca.Leaf{URIs: []string{"https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main"}, Issuer: gha})
			signAndAttestWith(t, key, d)
			return d
		}, sign.ReasonWrongIdentity, `certificate names "https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main", want ` + workflow, false},
		{"wrong OIDC issuer", func(t *testing.T, _ string, d name.Digest) name.Digest {
			key, _ := certKey(t, ours, trusted, testca.Leaf{URIs: []string{workflow}, Issuer: "https://accounts.google.com"})
			signAndAttestWith(t, key, d)
			return d
		}, sign.ReasonWrongIdentity, `certificate names issuer "https://accounts.google.com", want ` + gha, false},
		{"expired leaf", func(t *testing.T, _ string, d name.Digest) name.Digest {
			// The key signed while its certificate was valid (or its holder backdates):
			// without a log or timestamp nothing tells, so the certificate must be
			// valid now.
			leaf := goodLeaf
			leaf.Validity = testca.Validity{NotBefore: time.Now().Add(-3 * time.Hour), NotAfter: time.Now().Add(-2 * time.Hour)}
			leaf.PublicKey = publicKey(t, trusted)
			_, expiredPEM, err := ours.inter.Issue(leaf)
			require.NoError(t, err)
			require.NoError(t, newSigner(t, trusted, legacy).Sign(context.Background(), d))
			rewriteLayers(t, d, ociremote.SignatureTag, func(s oci.Signature) oci.Signature {
				payload, err := s.Payload()
				require.NoError(t, err)
				b64, err := s.Base64Signature()
				require.NoError(t, err)
				ns, err := static.NewSignature(payload, b64, static.WithCertChain(expiredPEM, ours.chainPEM()))
				require.NoError(t, err)
				return ns
			})
			return d
		}, sign.ReasonExpiredCertificate, "nothing proves it signed while valid", false},
		{"certificate signature copied onto another digest", func(t *testing.T, host string, d name.Digest) name.Digest {
			key, _ := certKey(t, ours, trusted, goodLeaf)
			signAndAttestWith(t, key, d)
			other := pushImage(t, host, "team/app", "other")
			copyTag(t, d, other, ociremote.SignatureTag)
			copyTag(t, d, other, ociremote.AttestationTag)
			return other
		}, sign.ReasonWrongSubject, "signed by trusted identity release-workflow for image sha256:", false},
		{"key signature where the policy trusts identities only", func(t *testing.T, _ string, d name.Digest) name.Digest {
			signAndAttest(t, trusted, d, sourceRepo)
			return d
		}, sign.ReasonUntrustedSignature, "made with a key and no certificate; the policy trusts certificate identities only", false},
		{"attestation by a wrong identity", func(t *testing.T, _ string, d name.Digest) name.Digest {
			good, _ := certKey(t, ours, trusted, goodLeaf)
			require.NoError(t, newSignerKey(t, good).Sign(context.Background(), d))
			evil, _ := certKey(t, ours, trusted2, testca.Leaf{URIs: []string{"https://github.com/evil/app/.github/workflows/x.yml@refs/heads/main"}, Issuer: gha})
			_, vuln, prov := predicates(t, sourceRepo)
			require.NoError(t, newSignerKey(t, evil).Attest(context.Background(), d, prov))
			require.NoError(t, newSignerKey(t, evil).Attest(context.Background(), d, vuln))
			return d
		}, sign.ReasonWrongIdentity, "attestation of https://slsa.dev/provenance/v1: not by trusted identity release-workflow", true},
	}
}

// TestCertificateAttacks runs each attack on certificate signatures; every one must
// be denied with its reason named.
func TestCertificateAttacks(t *testing.T) {
	ours, theirs := newPKI(t, "ours"), newPKI(t, "theirs")
	for _, tc := range certAttacks(ours, theirs) {
		t.Run(tc.name, func(t *testing.T) {
			host := newRegistry(t)
			d := pushImage(t, host, "team/app", "v1")
			target := tc.attack(t, host, d)
			_, err := newVerifier(t, certPolicy(ours.identity())).Verify(context.Background(), target)
			require.ErrorIs(t, err, sign.ErrDenied)
			var denied *sign.DeniedError
			require.ErrorAs(t, err, &denied)
			assert.True(t, denied.Has(tc.code), "want reason %s in %v", tc.code, denied.Reasons)
			assert.Contains(t, err.Error(), tc.text)
			t.Log(err)
		})
	}

	// A policy that trusts keys only does not count certificate signatures.
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	key, _ := certKey(t, ours, trusted, goodLeaf)
	signAndAttestWith(t, key, d)
	_, err := newVerifier(t, fullPolicy(trusted.trustedKey())).Verify(context.Background(), d)
	assert.ErrorContains(t, err, "signature 1: made with a certificate for "+workflow+"; the policy trusts keys only")
}

// readLayers returns the signatures (or attestations) of d.
func readLayers(t testing.TB, d name.Digest, tagFn func(name.Reference, ...ociremote.Option) (name.Tag, error)) []oci.Signature {
	t.Helper()
	tag, err := tagFn(d)
	require.NoError(t, err)
	sigs, err := ociremote.Signatures(tag)
	require.NoError(t, err)
	list, err := sigs.Get()
	require.NoError(t, err)
	return list
}

// rewriteLayers replaces each signature (or attestation) of d with f's.
func rewriteLayers(t *testing.T, d name.Digest, tagFn func(name.Reference, ...ociremote.Option) (name.Tag, error), f func(oci.Signature) oci.Signature) {
	t.Helper()
	var out []oci.Signature
	for _, s := range readLayers(t, d, tagFn) {
		out = append(out, f(s))
	}
	writeLayers(t, d, tagFn, out...)
}
