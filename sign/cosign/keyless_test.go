package cosign

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	sgsign "github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/shipkit/shipkit/internal/sigstoretest"
	"github.com/shipkit/shipkit/sign"
)

// startSigstore starts a virtual sigstore for the test.
func startSigstore(t *testing.T, opts ...sigstoretest.Option) *sigstoretest.Sigstore {
	t.Helper()
	s, err := sigstoretest.Start(opts...)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

// trustedRootOf loads s's trusted root through trusted_root.json on disk.
func trustedRootOf(t *testing.T, s *sigstoretest.Sigstore, opts ...TrustedRootOption) *TrustedRoot {
	t.Helper()
	js, err := s.TrustedRootJSON()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "trusted_root.json")
	require.NoError(t, os.WriteFile(path, js, 0o600))
	tr, err := LoadTrustedRoot(path, opts...)
	require.NoError(t, err)
	return tr
}

// statementFor is an in-toto statement about the artifact with SHA-256 digest d.
func statementFor(t *testing.T, d [32]byte) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": "image", "digest": map[string]string{"sha256": hexOf(d)}}},
		"predicateType": "https://sigstore.dev/cosign/sign/v1",
		"predicate":     map[string]any{},
	})
	require.NoError(t, err)
	return b
}

func hexOf(d [32]byte) string {
	const hexdigits = "0123456789abcdef"
	var sb strings.Builder
	for _, c := range d {
		sb.WriteByte(hexdigits[c>>4])
		sb.WriteByte(hexdigits[c&15])
	}
	return sb.String()
}

// keylessBundle signs a statement about digest d as subject through s.
func keylessBundle(t *testing.T, s *sigstoretest.Sigstore, subject string, d [32]byte, rekor, tsa bool) *bundle.Bundle {
	t.Helper()
	tok, err := s.IDToken(subject)
	require.NoError(t, err)
	k := Keyless{Token: StaticToken(tok), FulcioURL: s.URL}
	if rekor {
		k.RekorURL = s.URL
	}
	if tsa {
		k.TSAURL = s.TSAURL
	}
	ks, err := NewKeylessSigner(k)
	require.NoError(t, err)
	pb, err := ks.Bundle(t.Context(), &sgsign.DSSEData{Data: statementFor(t, d), PayloadType: "application/vnd.in-toto+json"})
	require.NoError(t, err)
	b, err := bundle.NewBundle(pb)
	require.NoError(t, err)
	return b
}

func identitiesOf(t *testing.T, ids ...sign.TrustedIdentity) []trustedIdentity {
	t.Helper()
	var out []trustedIdentity
	for _, id := range ids {
		fp, err := id.Fingerprint()
		require.NoError(t, err)
		out = append(out, trustedIdentity{name: id.DisplayName(), fingerprint: "identity " + fp, id: id})
	}
	return out
}

const (
	releaser = "https://github.com/example/app/.github/workflows/release.yml@refs/heads/main"
)

func TestKeylessCheck(t *testing.T) {
	s := startSigstore(t)
	tr := trustedRootOf(t, s)
	img := sha256.Sum256([]byte("image"))
	other := sha256.Sum256([]byte("another image"))
	digest := func(d [32]byte) verify.ArtifactPolicyOption { return verify.WithArtifactDigest("sha256", d[:]) }
	exact := sign.TrustedIdentity{Name: "release", Subject: releaser, Issuer: sigstoretest.DefaultIssuer}
	re := sign.TrustedIdentity{SubjectRegexp: `https://github\.com/example/.*`, IssuerRegexp: `https://oidc\.sigstoretest\.invalid`}

	good := keylessBundle(t, s, releaser, img, true, false)
	goodTSA := keylessBundle(t, s, releaser, img, false, true)

	// Another sigstore (another Fulcio root, log key and TSA).
	foreign := startSigstore(t)
	fromForeign := keylessBundle(t, foreign, releaser, img, true, true)

	// Certificates issued an hour ago (valid 10 minutes), without and with proof
	// of when they signed.
	past := startSigstore(t, sigstoretest.WithClock(func() time.Time { return time.Now().Add(-time.Hour) }))
	trPast := trustedRootOf(t, past, WithTlogThreshold(0), WithTimestampThreshold(1))
	expiredNoProof := func() *bundle.Bundle {
		// Fulcio only: sigstore-go's own signer, as the KeylessSigner refuses to sign
		// without a log or a timestamp authority.
		tok, err := past.IDToken(releaser)
		require.NoError(t, err)
		kp, err := sgsign.NewEphemeralKeypair(nil)
		require.NoError(t, err)
		pb, err := sgsign.Bundle(&sgsign.DSSEData{Data: statementFor(t, img), PayloadType: "application/vnd.in-toto+json"}, kp, sgsign.BundleOptions{
			Context:                    t.Context(),
			CertificateProvider:        sgsign.NewFulcio(&sgsign.FulcioOptions{BaseURL: past.URL}),
			CertificateProviderOptions: &sgsign.CertificateProviderOptions{IDToken: tok},
		})
		require.NoError(t, err)
		b, err := bundle.NewBundle(pb)
		require.NoError(t, err)
		return b
	}()
	expiredStamped := keylessBundle(t, past, releaser, img, false, true)

	// A log entry for another artifact: the bundle for img with the entry logged
	// for a signature over another image.
	swapped := keylessBundle(t, s, releaser, img, true, false)
	otherEntry := keylessBundle(t, s, releaser, other, true, false)
	swapped.VerificationMaterial.TlogEntries = otherEntry.VerificationMaterial.TlogEntries

	// A bundle whose statement was edited after signing to name img (signed for
	// another image, with a timestamp only, so no log entry records the payload).
	edited := keylessBundle(t, s, releaser, other, false, true)
	edited.GetDsseEnvelope().Payload = statementFor(t, img)

	for _, tc := range []struct {
		name     string
		tr       *TrustedRoot
		b        *bundle.Bundle
		artifact [32]byte
		ids      []sign.TrustedIdentity
		signer   string
		code     sign.ReasonCode
		text     string
	}{
		{name: "exact identity, log entry", tr: tr, b: good, artifact: img, ids: []sign.TrustedIdentity{exact}, signer: "release"},
		{name: "anchored regexp identity, timestamp only", tr: trustedRootOf(t, s, WithTlogThreshold(0), WithTimestampThreshold(1)), b: goodTSA, artifact: img,
			ids: []sign.TrustedIdentity{exact, re}[1:], signer: re.DisplayName()},
		{name: "second identity matches", tr: tr, b: good, artifact: img,
			ids: []sign.TrustedIdentity{{Subject: "alice@example.com", Issuer: sigstoretest.DefaultIssuer}, exact}, signer: "release"},
		{name: "expired certificate proven by a timestamp", tr: trPast, b: expiredStamped, artifact: img, ids: []sign.TrustedIdentity{exact}, signer: "release"},

		{name: "wrong subject", tr: tr, b: good, artifact: img, code: sign.ReasonWrongIdentity, text: "none of the trusted identities (someone)",
			ids: []sign.TrustedIdentity{{Name: "someone", Subject: "https://github.com/example/app/.github/workflows/other.yml@refs/heads/main", Issuer: sigstoretest.DefaultIssuer}}},
		{name: "wrong issuer", tr: tr, b: good, artifact: img, code: sign.ReasonWrongIdentity, text: "from " + sigstoretest.DefaultIssuer,
			ids: []sign.TrustedIdentity{{Subject: releaser, Issuer: "https://token.actions.githubusercontent.com"}}},
		{name: "regexp is anchored", tr: tr, b: good, artifact: img, code: sign.ReasonWrongIdentity, text: "none of the trusted identities",
			ids: []sign.TrustedIdentity{{SubjectRegexp: `https://github\.com/example`, Issuer: sigstoretest.DefaultIssuer}}},
		{name: "certificate from another root", tr: tr, b: fromForeign, artifact: img, ids: []sign.TrustedIdentity{exact},
			code: sign.ReasonUntrustedSignature, text: "not issued by a certificate authority of the trusted root"},
		{name: "expired certificate, no log entry or timestamp", tr: trPast, b: expiredNoProof, artifact: img, ids: []sign.TrustedIdentity{exact},
			code: sign.ReasonExpiredCertificate, text: "has expired, and no log entry or timestamp the trusted root verifies proves when it signed"},
		{name: "expired certificate, log required", tr: trustedRootOf(t, past), b: expiredNoProof, artifact: img, ids: []sign.TrustedIdentity{exact},
			code: sign.ReasonExpiredCertificate, text: "has expired, and its transparency log entries do not verify"},
		{name: "log entry for another artifact", tr: tr, b: swapped, artifact: img, ids: []sign.TrustedIdentity{exact},
			code: sign.ReasonUntrustedSignature, text: "transparency log entries do not verify against the trusted root or are not this signature's"},
		{name: "signature for another artifact", tr: tr, b: good, artifact: other, ids: []sign.TrustedIdentity{exact},
			code: sign.ReasonWrongSubject, text: "is for another artifact"},
		{name: "timestamp required, none", tr: trustedRootOf(t, s, WithTimestampThreshold(1)), b: good, artifact: img, ids: []sign.TrustedIdentity{exact},
			code: sign.ReasonUntrustedSignature, text: "no log entry or timestamp the trusted root verifies"},
		{name: "statement edited to name the image", tr: trustedRootOf(t, s, WithTlogThreshold(0), WithTimestampThreshold(1)), b: edited, artifact: img,
			ids: []sign.TrustedIdentity{exact}, code: sign.ReasonUntrustedSignature, text: "does not verify: failed to verify signature"},
		{name: "no trusted root", b: good, artifact: img, ids: []sign.TrustedIdentity{exact},
			code: sign.ReasonUntrustedSignature, text: "has no sigstore trusted root"},
		{name: "keys only", tr: tr, b: good, artifact: img, code: sign.ReasonUntrustedSignature, text: "the policy trusts keys only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, p := keylessCheck(tc.tr, tc.b, digest(tc.artifact), identitiesOf(t, tc.ids...), "signature 1: ", sign.ReasonUntrustedSignature)
			if tc.signer != "" {
				require.Nil(t, p, "%+v", p)
				require.NotNil(t, got)
				assert.Equal(t, tc.signer, got.name)
				return
			}
			require.Nil(t, got, "a tampered bundle passed")
			t.Log(p.msg)
			require.NotNil(t, p)
			assert.Equal(t, tc.code, p.code, p.msg)
			assert.Contains(t, p.msg, tc.text)
			assert.True(t, strings.HasPrefix(p.msg, "signature 1: keyless signature by "), p.msg)
		})
	}
}

func TestTrustedRootLoad(t *testing.T) {
	s := startSigstore(t)
	js, err := s.TrustedRootJSON()
	require.NoError(t, err)
	tr, err := ParseTrustedRoot(js)
	require.NoError(t, err)
	assert.Len(t, tr.Fingerprint(), 64)
	assert.Contains(t, tr.String(), "1 certificate authorities, 1 transparency logs, 1 timestamp authorities, 0 CT logs")
	tr2, err := ParseTrustedRoot(js, WithTimestampThreshold(1))
	require.NoError(t, err)
	assert.NotEqual(t, tr.Fingerprint(), tr2.Fingerprint(), "the thresholds are part of what is trusted")
	again, err := ParseTrustedRoot(js)
	require.NoError(t, err)
	assert.Equal(t, tr.Fingerprint(), again.Fingerprint())

	dir := t.TempDir()
	big := filepath.Join(dir, "big.json")
	require.NoError(t, os.WriteFile(big, append(js, make([]byte, MaxTrustedRootSize)...), 0o600))
	_, err = LoadTrustedRoot(big)
	require.ErrorIs(t, err, ErrTrustedRoot)
	assert.Contains(t, err.Error(), "larger than")

	_, err = LoadTrustedRoot(filepath.Join(dir, "missing.json"))
	require.ErrorIs(t, err, ErrTrustedRoot)

	_, err = ParseTrustedRoot([]byte(`{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1", "secret": "hunter2`))
	require.ErrorIs(t, err, ErrTrustedRoot)
	assert.NotContains(t, err.Error(), "hunter2")

	// A root with no certificate authority cannot verify keyless signatures.
	var m map[string]any
	require.NoError(t, json.Unmarshal(js, &m))
	delete(m, "certificateAuthorities")
	noCA, err := json.Marshal(m)
	require.NoError(t, err)
	_, err = ParseTrustedRoot(noCA)
	require.ErrorIs(t, err, ErrTrustedRoot)
	assert.Contains(t, err.Error(), "no certificate authority")

	// Thresholds: every bad one named at once.
	_, err = ParseTrustedRoot(js, WithTlogThreshold(-1), WithTimestampThreshold(-2))
	require.ErrorIs(t, err, ErrInvalidOption)
	assert.Contains(t, err.Error(), "WithTlogThreshold(-1)")
	assert.Contains(t, err.Error(), "WithTimestampThreshold(-2)")
	_, err = ParseTrustedRoot(js, WithTlogThreshold(0))
	require.ErrorIs(t, err, ErrInvalidOption)
	_, err = NewTrustedRoot(nil)
	require.ErrorIs(t, err, ErrTrustedRoot)
}

func TestKeylessSignerOptions(t *testing.T) {
	_, err := NewKeylessSigner(Keyless{FulcioURL: "ftp://x", RekorURL: "not a url"})
	require.ErrorIs(t, err, ErrInvalidOption)
	for _, want := range []string{"Keyless.Token: nil", "Keyless.FulcioURL", "Keyless.RekorURL"} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = NewKeylessSigner(Keyless{Token: StaticToken("t"), FulcioURL: "https://fulcio.example"})
	require.ErrorIs(t, err, ErrInvalidOption)
	assert.Contains(t, err.Error(), "neither RekorURL nor TSAURL")

	// A token Fulcio refuses: the error names the step and never holds the token.
	s := startSigstore(t)
	foreign := startSigstore(t)
	tok, err := foreign.IDToken(releaser)
	require.NoError(t, err)
	ks, err := NewKeylessSigner(Keyless{Token: StaticToken(tok), FulcioURL: s.URL, RekorURL: s.URL})
	require.NoError(t, err)
	_, err = ks.Bundle(t.Context(), &sgsign.PlainData{Data: []byte("x")})
	require.ErrorIs(t, err, ErrKeylessSigning)
	assert.NotContains(t, err.Error(), tok)
	assert.Zero(t, s.LogEntries())

	// A bundle checked against the wrong trusted root at signing fails there.
	tok, err = s.IDToken(releaser)
	require.NoError(t, err)
	ks, err = NewKeylessSigner(Keyless{Token: StaticToken(tok), FulcioURL: s.URL, RekorURL: s.URL, TrustedRoot: trustedRootOf(t, foreign)})
	require.NoError(t, err)
	_, err = ks.Bundle(t.Context(), &sgsign.PlainData{Data: []byte("x")})
	require.ErrorIs(t, err, ErrKeylessSigning)
}

func TestVerifierTrustedRoot(t *testing.T) {
	s := startSigstore(t)
	p := sign.Policy{TrustedIdentities: []sign.TrustedIdentity{{Subject: releaser, Issuer: sigstoretest.DefaultIssuer}}}
	_, err := NewVerifier(p)
	require.ErrorIs(t, err, ErrInvalidOption)
	assert.Contains(t, err.Error(), "WithTrustedRoot")

	tr := trustedRootOf(t, s)
	v, err := NewVerifier(p, WithTrustedRoot(tr))
	require.NoError(t, err)
	assert.Contains(t, v.policyKey, tr.Fingerprint(), "verdicts under another root are not shared")
	other, err := NewVerifier(p, WithTrustedRoot(trustedRootOf(t, startSigstore(t))))
	require.NoError(t, err)
	assert.NotEqual(t, v.policyKey, other.policyKey)
}

// certOf hands sigstore-go's bundle signer a certificate already obtained.
type certOf []byte

func (c certOf) GetCertificate(context.Context, sgsign.Keypair, *sgsign.CertificateProviderOptions) ([]byte, error) {
	return c, nil
}

// TestKeylessKey: the key a Signer signs with keylessly carries Fulcio's
// certificate for the token's identity, and its finish step adds the log entry and
// timestamp a verifier needs to the bundle the Signer made.
func TestKeylessKey(t *testing.T) {
	s := startSigstore(t)
	tr := trustedRootOf(t, s)
	tok, err := s.IDToken("release@example.com")
	require.NoError(t, err)
	ks, err := NewKeylessSigner(Keyless{Token: StaticToken(tok), FulcioURL: s.URL, RekorURL: s.URL, TSAURL: s.TSAURL, TrustedRoot: tr})
	require.NoError(t, err)
	key, err := ks.Key(t.Context())
	require.NoError(t, err)
	require.NotNil(t, key.cert)
	assert.Equal(t, []string{"release@example.com"}, key.cert.EmailAddresses)
	assert.Contains(t, key.String(), "keyless key")
	assert.NotContains(t, key.String(), tok)
	require.NotNil(t, key.finish)

	img := sha256.Sum256([]byte("image"))
	pub, err := key.sv.PublicKey()
	require.NoError(t, err)
	pb, err := sgsign.Bundle(&sgsign.DSSEData{Data: statementFor(t, img), PayloadType: "application/vnd.in-toto+json"},
		keypairOf{sv: key.sv, pub: pub.(*ecdsa.PublicKey)}, sgsign.BundleOptions{Context: t.Context(), CertificateProvider: certOf(key.cert.Raw)})
	require.NoError(t, err)
	b, err := bundle.NewBundle(pb)
	require.NoError(t, err)
	id := sign.TrustedIdentity{Subject: "release@example.com", Issuer: sigstoretest.DefaultIssuer}
	_, p := keylessCheck(tr, b, verify.WithArtifactDigest("sha256", img[:]), identitiesOf(t, id), "", sign.ReasonUntrustedSignature)
	require.NotNil(t, p, "no log entry yet")

	require.NoError(t, key.finish(t.Context(), pb))
	assert.Equal(t, 1, s.LogEntries())
	b, err = bundle.NewBundle(pb)
	require.NoError(t, err)
	assert.True(t, b.HasInclusionProof())
	ts, err := b.Timestamps()
	require.NoError(t, err)
	assert.Len(t, ts, 1)
	who, p := keylessCheck(tr, b, verify.WithArtifactDigest("sha256", img[:]), identitiesOf(t, id), "", sign.ReasonUntrustedSignature)
	require.Nil(t, p)
	assert.Equal(t, id.DisplayName(), who.name)

	// Finishing checks the result against the trusted root: another root refuses.
	ks, err = NewKeylessSigner(Keyless{Token: StaticToken(tok), FulcioURL: s.URL, RekorURL: s.URL, TrustedRoot: trustedRootOf(t, startSigstore(t))})
	require.NoError(t, err)
	key, err = ks.Key(t.Context())
	require.NoError(t, err)
	pb, err = sgsign.Bundle(&sgsign.DSSEData{Data: statementFor(t, img), PayloadType: "application/vnd.in-toto+json"},
		keypairOf{sv: key.sv, pub: key.pub.(*ecdsa.PublicKey)}, sgsign.BundleOptions{Context: t.Context(), CertificateProvider: certOf(key.cert.Raw)})
	require.NoError(t, err)
	err = key.finish(t.Context(), pb)
	require.ErrorIs(t, err, ErrKeylessSigning)
	assert.Contains(t, err.Error(), "does not verify against the trusted root")
}

// BenchmarkKeylessCheck is the cost of judging one keyless bundle (a Rekor entry
// with SET and inclusion proof, and a timestamp) against a trusted root: one
// sigstore-go verification and the identity match, all offline.
func BenchmarkKeylessCheck(b *testing.B) {
	s, err := sigstoretest.Start()
	require.NoError(b, err)
	defer s.Close()
	js, err := s.TrustedRootJSON()
	require.NoError(b, err)
	tr, err := ParseTrustedRoot(js)
	require.NoError(b, err)
	img := sha256.Sum256([]byte("image"))
	tok, err := s.IDToken(releaser)
	require.NoError(b, err)
	ks, err := NewKeylessSigner(Keyless{Token: StaticToken(tok), FulcioURL: s.URL, RekorURL: s.URL, TSAURL: s.TSAURL})
	require.NoError(b, err)
	st, err := json.Marshal(map[string]any{"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": map[string]any{},
		"subject": []any{map[string]any{"name": "image", "digest": map[string]string{"sha256": hexOf(img)}}}})
	require.NoError(b, err)
	pb, err := ks.Bundle(b.Context(), &sgsign.DSSEData{Data: st, PayloadType: "application/vnd.in-toto+json"})
	require.NoError(b, err)
	raw, err := protojson.Marshal(pb)
	require.NoError(b, err)
	id := sign.TrustedIdentity{Name: "release", SubjectRegexp: `https://github\.com/example/.*`, Issuer: sigstoretest.DefaultIssuer}
	fp, err := id.Fingerprint()
	require.NoError(b, err)
	ids := []trustedIdentity{{name: id.DisplayName(), fingerprint: "identity " + fp, id: id}}
	about := verify.WithArtifactDigest("sha256", img[:])
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var bb bundle.Bundle // parsed each time, as a verifier reads it from the registry
		if err := bb.UnmarshalJSON(raw); err != nil {
			b.Fatal(err)
		}
		if _, p := keylessCheck(tr, &bb, about, ids, "", sign.ReasonUntrustedSignature); p != nil {
			b.Fatal(p.msg)
		}
	}
}
