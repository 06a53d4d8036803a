package cosign_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/sigstoretest"
	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

const keylessWorkflow = "https://github.com/example/app/.github/workflows/release.yml@refs/tags/v1.2.3"

// keylessSigstore starts a virtual sigstore and writes its trusted_root.json.
func keylessSigstore(t *testing.T) (*sigstoretest.Sigstore, *cosign.TrustedRoot) {
	t.Helper()
	s, err := sigstoretest.Start()
	require.NoError(t, err)
	t.Cleanup(s.Close)
	js, err := s.TrustedRootJSON()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "trusted_root.json")
	require.NoError(t, os.WriteFile(path, js, 0o600))
	tr, err := cosign.LoadTrustedRoot(path)
	require.NoError(t, err)
	return s, tr
}

// keylessKey gets a keyless signing key for subject from s.
func keylessKey(t *testing.T, s *sigstoretest.Sigstore, tr *cosign.TrustedRoot, subject string) *cosign.PrivateKey {
	t.Helper()
	ks, err := cosign.NewKeylessSigner(cosign.Keyless{
		Token:       func(context.Context) (string, error) { return s.IDToken(subject) },
		FulcioURL:   s.URL,
		RekorURL:    s.URL,
		TSAURL:      s.TSAURL,
		TrustedRoot: tr,
	})
	require.NoError(t, err)
	key, err := ks.Key(context.Background())
	require.NoError(t, err)
	return key
}

// TestKeylessRegistries signs and attests an image keylessly (a Fulcio
// certificate, a Rekor entry and a timestamp from the virtual sigstore, in a
// sigstore bundle pushed as an OCI 1.1 referrer) in each registry of the test bed,
// and verifies it offline against the trusted root with a certificate identity;
// another identity, issuer or root is denied by name.
func TestKeylessRegistries(t *testing.T) {
	for _, tc := range []struct {
		name string
		reg  func(t *testing.T) (host string, dist *registry.Distribution, opts []cosign.Option, ropts []remote.Option)
	}{
		{"in-process", func(t *testing.T) (string, *registry.Distribution, []cosign.Option, []remote.Option) {
			return newRegistry(t), nil, nil, nil
		}},
		{"distribution", func(t *testing.T) (string, *registry.Distribution, []cosign.Option, []remote.Option) {
			reg := distribution.Get(t)
			return reg.Host, reg, []cosign.Option{cosign.WithTransport(reg.Transport), cosign.WithKeychain(reg.Keychain())}, reg.RemoteOptions()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			host, dist, auth, ropts := tc.reg(t)
			s, tr := keylessSigstore(t)
			d := pushImage(t, host, "team/app", "keyless", ropts...)

			signer, err := cosign.NewSigner(keylessKey(t, s, tr, keylessWorkflow), auth...)
			require.NoError(t, err)
			require.NoError(t, signer.Sign(ctx, d))
			_, _, prov := predicates(t, sourceRepo)
			require.NoError(t, signer.Attest(ctx, d, prov))
			assert.Equal(t, 2, s.LogEntries(), "the signature and the attestation are logged")

			release := sign.TrustedIdentity{Name: "release", SubjectRegexp: `https://github\.com/example/app/\.github/workflows/release\.yml@refs/tags/v.*`,
				Issuer: sigstoretest.DefaultIssuer}
			policy := func(id sign.TrustedIdentity) sign.Policy {
				return sign.Policy{TrustedIdentities: []sign.TrustedIdentity{id}, RequiredPredicates: []string{sign.PredicateSLSAProvenance}}
			}
			got, err := newVerifier(t, policy(release), append(auth, cosign.WithTrustedRoot(tr))...).Verify(ctx, d)
			require.NoError(t, err)
			assert.Equal(t, []string{"release"}, got.Signers)
			require.Len(t, got.Attestations, 1)
			assert.Equal(t, sign.PredicateSLSAProvenance, got.Attestations[0].PredicateType)
			assert.Equal(t, "release", got.Attestations[0].Signer)

			deny := func(p sign.Policy, tr *cosign.TrustedRoot, code sign.ReasonCode, text string) {
				t.Helper()
				_, err := newVerifier(t, p, append(auth, cosign.WithTrustedRoot(tr))...).Verify(ctx, d)
				require.ErrorIs(t, err, sign.ErrDenied, "a keyless signature passed a policy it does not meet")
				var de *sign.DeniedError
				require.True(t, errors.As(err, &de))
				codes := map[sign.ReasonCode]bool{}
				for _, r := range de.Reasons {
					codes[r.Code] = true
				}
				assert.True(t, codes[code], "want %s in %v", code, de.Reasons)
				assert.Contains(t, err.Error(), text)
			}
			other := release
			other.SubjectRegexp = `https://github\.com/example/app/\.github/workflows/nightly\.yml@.*`
			deny(policy(other), tr, sign.ReasonWrongIdentity, "none of the trusted identities")
			other = release
			other.Issuer = "https://token.actions.githubusercontent.com"
			deny(policy(other), tr, sign.ReasonWrongIdentity, "none of the trusted identities")
			_, foreign := keylessSigstore(t)
			deny(policy(release), foreign, sign.ReasonUntrustedSignature, "not issued by a certificate authority of the trusted root")

			// A policy whose identity has no roots of its own needs a trusted root.
			_, err = cosign.NewVerifier(policy(release), auth...)
			require.ErrorIs(t, err, cosign.ErrInvalidOption)

			// cosign v3 verifies the same signature and attestation offline against the
			// same trusted root (the virtual Fulcio embeds no SCT), and refuses another
			// identity.
			bin := testbed.ToolPath("cosign", "v3.1.3")
			if _, err := os.Stat(bin); err != nil {
				testbed.Check(t, testbed.Missingf("cosign CLI v3.1.3 not at %s", bin))
			}
			c := newCosignRun(t, dist)
			c.bin = bin
			js, err := s.TrustedRootJSON()
			require.NoError(t, err)
			cli := []string{"--trusted-root", c.file("trusted_root.json", js), "--certificate-oidc-issuer", sigstoretest.DefaultIssuer, "--insecure-ignore-sct"}
			if dist == nil {
				cli = append(cli, "--allow-insecure-registry", "--allow-http-registry")
			}
			out := c.ok(append(append([]string{"verify", "--certificate-identity", keylessWorkflow}, cli...), d.String())...)
			assert.Contains(t, out, d.DigestStr())
			assert.Contains(t, out, "Existence of the claims in the transparency log was verified offline")
			c.ok(append(append([]string{"verify-attestation", "--type", "slsaprovenance1", "--certificate-identity", keylessWorkflow}, cli...), d.String())...)
			c.fails(append(append([]string{"verify", "--certificate-identity", "https://github.com/example/app/.github/workflows/nightly.yml@refs/heads/main"}, cli...), d.String())...)
		})
	}
}
