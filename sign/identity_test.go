package sign_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/internal/testca"
)

const (
	workflow = "https://github.com/example/app/.github/workflows/release.yml@refs/heads/main"
	gha      = "https://token.actions.githubusercontent.com"
)

type pki struct {
	root, inter *testca.CA
}

func newPKI(t *testing.T, name string) pki {
	t.Helper()
	root, err := testca.NewRoot(name+" root", testca.Validity{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour)})
	require.NoError(t, err)
	inter, err := root.Intermediate(name+" intermediate", testca.Validity{NotBefore: time.Now().Add(-47 * time.Hour), NotAfter: time.Now().Add(300 * 24 * time.Hour)})
	require.NoError(t, err)
	return pki{root, inter}
}

func (p pki) leaf(t *testing.T, l testca.Leaf) *x509.Certificate {
	t.Helper()
	if l.PublicKey == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		l.PublicKey = k.Public()
	}
	c, _, err := p.inter.Issue(l)
	require.NoError(t, err)
	return c
}

func TestTrustedIdentityVerify(t *testing.T) {
	ours, theirs := newPKI(t, "ours"), newPKI(t, "theirs")
	now := time.Now()
	id := sign.TrustedIdentity{RootsPEM: ours.root.PEM, Subject: workflow, Issuer: gha}
	good := testca.Leaf{URIs: []string{workflow}, Issuer: gha}
	expired := good
	expired.Validity = testca.Validity{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)}

	for _, tc := range []struct {
		name  string
		id    sign.TrustedIdentity
		leaf  *x509.Certificate
		chain []*x509.Certificate
		want  error
		text  string
	}{
		{name: "exact subject and issuer", id: id, leaf: ours.leaf(t, good), chain: []*x509.Certificate{ours.inter.Cert}},
		{name: "intermediates from the policy", id: sign.TrustedIdentity{RootsPEM: ours.root.PEM, IntermediatesPEM: ours.inter.PEM, Subject: workflow, Issuer: gha},
			leaf: ours.leaf(t, good)},
		{name: "subject regexp", id: sign.TrustedIdentity{RootsPEM: ours.root.PEM, SubjectRegexp: `https://github\.com/example/.*`, Issuer: gha},
			leaf: ours.leaf(t, good), chain: []*x509.Certificate{ours.inter.Cert}},
		{name: "email and issuer regexp", id: sign.TrustedIdentity{RootsPEM: ours.root.PEM, Subject: "release@example.com", IssuerRegexp: `https://(accounts\.google\.com|token\.actions\.githubusercontent\.com)`},
			leaf: ours.leaf(t, testca.Leaf{Emails: []string{"release@example.com"}, Issuer: gha}), chain: []*x509.Certificate{ours.inter.Cert}},
		{name: "Fulcio username otherName SAN", id: sign.TrustedIdentity{RootsPEM: ours.root.PEM, Subject: "release-bot", Issuer: "https://dex.example.com"},
			leaf: ours.leaf(t, testca.Leaf{Username: "release-bot", Issuer: "https://dex.example.com"}), chain: []*x509.Certificate{ours.inter.Cert}},
		{name: "another root", id: id, leaf: theirs.leaf(t, good), chain: []*x509.Certificate{theirs.inter.Cert},
			want: sign.ErrCertificateNotTrusted, text: `issued by "CN=theirs intermediate`},
		{name: "root carried in the signature's chain is not trusted", id: id, leaf: theirs.leaf(t, good),
			chain: []*x509.Certificate{theirs.inter.Cert, theirs.root.Cert}, want: sign.ErrCertificateNotTrusted},
		{name: "no intermediate", id: id, leaf: ours.leaf(t, good), want: sign.ErrCertificateNotTrusted},
		{name: "not for code signing", id: id, leaf: ours.leaf(t, testca.Leaf{URIs: []string{workflow}, Issuer: gha, NoCodeSigning: true}),
			chain: []*x509.Certificate{ours.inter.Cert}, want: sign.ErrCertificateNotTrusted, text: "key usage"},
		{name: "wrong subject", id: id, leaf: ours.leaf(t, testca.Leaf{URIs: []string{"https://github.com/evil/app/.github/workflows/x.yml@refs/heads/main"}, Issuer: gha}),
			chain: []*x509.Certificate{ours.inter.Cert}, want: sign.ErrIdentityMismatch, text: `certificate names "https://github.com/evil/app/`},
		{name: "subject regexp is anchored", id: sign.TrustedIdentity{RootsPEM: ours.root.PEM, SubjectRegexp: `https://github\.com/example/.*`, Issuer: gha},
			leaf:  ours.leaf(t, testca.Leaf{URIs: []string{"https://evil.example/?https://github.com/example/app"}, Issuer: gha}),
			chain: []*x509.Certificate{ours.inter.Cert}, want: sign.ErrIdentityMismatch},
		{name: "wrong issuer", id: id, leaf: ours.leaf(t, testca.Leaf{URIs: []string{workflow}, Issuer: "https://accounts.google.com"}),
			chain: []*x509.Certificate{ours.inter.Cert}, want: sign.ErrIdentityMismatch, text: `issuer "https://accounts.google.com"`},
		{name: "no issuer", id: id, leaf: ours.leaf(t, testca.Leaf{URIs: []string{workflow}}),
			chain: []*x509.Certificate{ours.inter.Cert}, want: sign.ErrIdentityMismatch, text: `issuer ""`},
		{name: "expired leaf", id: id, leaf: ours.leaf(t, expired), chain: []*x509.Certificate{ours.inter.Cert},
			want: sign.ErrCertificateExpired, text: "nothing proves it signed while valid"},
		{name: "expired leaf from another root is untrusted first", id: id, leaf: theirs.leaf(t, expired),
			chain: []*x509.Certificate{theirs.inter.Cert}, want: sign.ErrCertificateNotTrusted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.id.Verify(tc.leaf, tc.chain, now)
			if tc.want == nil {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
			for _, other := range []error{sign.ErrCertificateNotTrusted, sign.ErrIdentityMismatch, sign.ErrCertificateExpired} {
				if !errors.Is(other, tc.want) {
					assert.NotErrorIs(t, err, other)
				}
			}
			assert.Contains(t, err.Error(), tc.text)
		})
	}
}

func TestTrustedIdentityValidate(t *testing.T) {
	ours := newPKI(t, "ours")
	for _, tc := range []struct {
		id   sign.TrustedIdentity
		text string
	}{
		{sign.TrustedIdentity{RootsPEM: []byte("junk"), Subject: "a", Issuer: "b"}, "not a PEM block"},
		{sign.TrustedIdentity{RootsPEM: []byte("garbage"), Subject: "a", Issuer: "b"}, "not a PEM block"},
		{sign.TrustedIdentity{RootsPEM: ours.root.PEM, Issuer: "b"}, "exactly one of Subject and SubjectRegexp"},
		{sign.TrustedIdentity{RootsPEM: ours.root.PEM, Subject: "a", SubjectRegexp: "a", Issuer: "b"}, "exactly one of Subject and SubjectRegexp"},
		{sign.TrustedIdentity{RootsPEM: ours.root.PEM, Subject: "a"}, "exactly one of Issuer and IssuerRegexp"},
		{sign.TrustedIdentity{RootsPEM: ours.root.PEM, SubjectRegexp: "(", Issuer: "b"}, "regular expression"},
		{sign.TrustedIdentity{RootsPEM: ours.root.PEM, IntermediatesPEM: []byte("-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n"), Subject: "a", Issuer: "b"}, "want CERTIFICATE"},
	} {
		assert.ErrorContains(t, tc.id.Validate(), tc.text)
	}
	// Without roots, an identity is trusted only through a sigstore trusted root: it
	// validates, and no certificate chain verifies for it on its own.
	keyless := sign.TrustedIdentity{Subject: "a@example.com", Issuer: "b"}
	require.NoError(t, keyless.Validate())
	leaf := ours.leaf(t, testca.Leaf{Emails: []string{"a@example.com"}, Issuer: "b"})
	require.ErrorIs(t, keyless.Verify(leaf, nil, time.Now()), sign.ErrCertificateNotTrusted)
	require.NoError(t, keyless.MatchCertificate(leaf))
	require.ErrorIs(t, sign.TrustedIdentity{Subject: "c", Issuer: "b"}.MatchCertificate(leaf), sign.ErrIdentityMismatch)
	require.ErrorIs(t, sign.TrustedIdentity{Subject: "a@example.com", IssuerRegexp: "c.*"}.MatchCertificate(leaf), sign.ErrIdentityMismatch)

	id := sign.TrustedIdentity{RootsPEM: ours.root.PEM, Subject: "a", Issuer: "b"}
	assert.Equal(t, "a from b", id.DisplayName())

	// Identities count as signers towards the threshold, and change the policy's key.
	p := sign.Policy{TrustedIdentities: []sign.TrustedIdentity{id, id}, Threshold: 2}
	assert.ErrorContains(t, p.Validate(), "threshold 2 cannot be met by 1 distinct trusted signers")
	other := id
	other.Subject = "c"
	k1, err := (&sign.Policy{TrustedIdentities: []sign.TrustedIdentity{id}}).Key()
	require.NoError(t, err)
	k2, err := (&sign.Policy{TrustedIdentities: []sign.TrustedIdentity{other}}).Key()
	require.NoError(t, err)
	assert.NotEqual(t, k1, k2)
}

func TestOIDCIssuer(t *testing.T) {
	ours := newPKI(t, "ours")
	got, err := sign.OIDCIssuer(ours.leaf(t, testca.Leaf{Issuer: gha}))
	require.NoError(t, err)
	assert.Equal(t, gha, got)
	got, err = sign.OIDCIssuer(ours.leaf(t, testca.Leaf{}))
	require.NoError(t, err)
	assert.Empty(t, got)
}
