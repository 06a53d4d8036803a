package sigstoretest_test

import (
	"crypto/sha256"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shipkit/shipkit/internal/sigstoretest"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgsign "github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// signBlob signs artifact keylessly through the virtual sigstore's Fulcio, Rekor
// and (when tsa) timestamp authority, with sigstore-go's own clients.
func signBlob(t *testing.T, s *sigstoretest.Sigstore, subject string, artifact []byte, rekor, tsa bool) *bundle.Bundle {
	t.Helper()
	tok, err := s.IDToken(subject)
	require.NoError(t, err)
	kp, err := sgsign.NewEphemeralKeypair(nil)
	require.NoError(t, err)
	opts := sgsign.BundleOptions{
		Context:                    t.Context(),
		CertificateProvider:        sgsign.NewFulcio(&sgsign.FulcioOptions{BaseURL: s.URL}),
		CertificateProviderOptions: &sgsign.CertificateProviderOptions{IDToken: tok},
	}
	if rekor {
		opts.TransparencyLogs = []sgsign.Transparency{sgsign.NewRekor(&sgsign.RekorOptions{BaseURL: s.URL})}
	}
	if tsa {
		opts.TimestampAuthorities = []*sgsign.TimestampAuthority{sgsign.NewTimestampAuthority(&sgsign.TimestampAuthorityOptions{URL: s.TSAURL})}
	}
	pb, err := sgsign.Bundle(&sgsign.PlainData{Data: artifact}, kp, opts)
	require.NoError(t, err)
	b, err := bundle.NewBundle(pb)
	require.NoError(t, err)
	return b
}

func start(t *testing.T, opts ...sigstoretest.Option) *sigstoretest.Sigstore {
	t.Helper()
	s, err := sigstoretest.Start(opts...)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	assert.True(t, strings.HasPrefix(s.URL, "http://127.0.0.1:"), s.URL)
	return s
}

// trusted round-trips the virtual sigstore's trusted root through trusted_root.json.
func trusted(t *testing.T, s *sigstoretest.Sigstore) *root.TrustedRoot {
	t.Helper()
	js, err := s.TrustedRootJSON()
	require.NoError(t, err)
	tr, err := root.NewTrustedRootFromJSON(js)
	require.NoError(t, err)
	return tr
}

func TestKeylessRoundTrip(t *testing.T) {
	s := start(t)
	artifact := []byte("hello, sigstore")
	digest := sha256.Sum256(artifact)
	for _, tc := range []struct {
		name       string
		subject    string
		rekor, tsa bool
		opts       []verify.VerifierOption
	}{
		{"rekor", "alice@example.com", true, false, []verify.VerifierOption{verify.WithTransparencyLog(1), verify.WithIntegratedTimestamps(1)}},
		{"tsa", "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main", false, true, []verify.VerifierOption{verify.WithSignedTimestamps(1)}},
		{"both", "bob@example.com", true, true, []verify.VerifierOption{verify.WithTransparencyLog(1), verify.WithSignedTimestamps(1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := signBlob(t, s, tc.subject, artifact, tc.rekor, tc.tsa)
			v, err := verify.NewVerifier(trusted(t, s), tc.opts...)
			require.NoError(t, err)
			id, err := verify.NewShortCertificateIdentity(sigstoretest.DefaultIssuer, "", tc.subject, "")
			require.NoError(t, err)
			res, err := v.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", digest[:]), verify.WithCertificateIdentity(id)))
			require.NoError(t, err)
			assert.Equal(t, tc.subject, res.Signature.Certificate.SubjectAlternativeName)
			if tc.rekor {
				entries, err := b.TlogEntries()
				require.NoError(t, err)
				require.Len(t, entries, 1)
				assert.True(t, b.HasInclusionProof())
				assert.True(t, b.HasInclusionPromise())
			}

			// Another identity, another artifact: refused.
			other, err := verify.NewShortCertificateIdentity(sigstoretest.DefaultIssuer, "", "mallory@example.com", "")
			require.NoError(t, err)
			_, err = v.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", digest[:]), verify.WithCertificateIdentity(other)))
			require.Error(t, err)
			od := sha256.Sum256([]byte("other"))
			_, err = v.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", od[:]), verify.WithCertificateIdentity(id)))
			require.Error(t, err)
		})
	}
	assert.Equal(t, 2, s.LogEntries())

	// Another virtual sigstore's root does not trust this one's material.
	other := start(t)
	b := signBlob(t, s, "alice@example.com", artifact, true, true)
	v, err := verify.NewVerifier(trusted(t, other), verify.WithTransparencyLog(1), verify.WithSignedTimestamps(1))
	require.NoError(t, err)
	_, err = v.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", digest[:]), verify.WithoutIdentitiesUnsafe()))
	require.Error(t, err)
}

func TestExpiredCertificate(t *testing.T) {
	// Certificates issued an hour ago, valid 10 minutes: without a log entry or a
	// timestamp, only the current time can be checked, and it is past.
	s := start(t, sigstoretest.WithClock(func() time.Time { return time.Now().Add(-time.Hour) }))
	artifact := []byte("x")
	digest := sha256.Sum256(artifact)
	b := signBlob(t, s, "alice@example.com", artifact, false, false)
	v, err := verify.NewVerifier(trusted(t, s), verify.WithCurrentTime())
	require.NoError(t, err)
	_, err = v.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", digest[:]), verify.WithoutIdentitiesUnsafe()))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "leaf certificate")

	// The same with a clock of now verifies: the time was what failed.
	fresh := start(t)
	b = signBlob(t, fresh, "alice@example.com", artifact, false, false)
	v, err = verify.NewVerifier(trusted(t, fresh), verify.WithCurrentTime())
	require.NoError(t, err)
	_, err = v.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", digest[:]), verify.WithoutIdentitiesUnsafe()))
	require.NoError(t, err)

	// With a timestamp from then, it verifies.
	b = signBlob(t, s, "alice@example.com", artifact, false, true)
	v, err = verify.NewVerifier(trusted(t, s), verify.WithSignedTimestamps(1))
	require.NoError(t, err)
	_, err = v.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", digest[:]), verify.WithoutIdentitiesUnsafe()))
	require.NoError(t, err)
}

func TestRefusals(t *testing.T) {
	s := start(t)
	post := func(path, auth, body string) int {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusUnauthorized, post("/api/v2/signingCert", "", "{}"))
	other := start(t)
	forged, err := other.IDToken("alice@example.com") // signed by another issuer's key
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, post("/api/v2/signingCert", forged, "{}"))
	tok, err := s.IDToken("alice@example.com")
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, post("/api/v2/signingCert", tok, `{"publicKeyRequest":{"publicKey":{"content":"junk"}}}`))
	assert.Equal(t, http.StatusBadRequest, post("/api/v1/log/entries", "", `{"kind":"hashedrekord"}`))
	assert.Equal(t, http.StatusBadRequest, post("/api/v1/timestamp", "", "junk"))
	assert.Zero(t, s.LogEntries())
}
