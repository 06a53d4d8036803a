package cosign_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
	"github.com/shipkit/shipkit/sign/internal/testca"
)

// cliVerifyCert is cosign verify (or verify-attestation) of a signature with a
// certificate from one's own PKI: the chain file names the root (its last
// certificate), and no transparency log or certificate transparency is asked.
func cliVerifyCert(cmd, chainPath, identity, issuer string, extra ...string) []string {
	args := []string{cmd, "--certificate-chain", chainPath, "--certificate-identity", identity,
		"--certificate-oidc-issuer", issuer, "--insecure-ignore-tlog", "--insecure-ignore-sct"}
	return append(args, extra...)
}

// TestCosignCLICertificateInterop checks signatures made with a certificate from a
// test CA (root → intermediate → leaf for a workflow URI, with Fulcio's issuer
// extension) both ways against the distribution registry: the CLI verifies what
// this package signed and attested, this package verifies what the CLI signed and
// attested with cosign sign --certificate --certificate-chain; and the CLI refuses
// a wrong identity as this package does.
func TestCosignCLICertificateInterop(t *testing.T) {
	reg := distribution.Get(t)
	ctx := context.Background()
	auth := []cosign.Option{cosign.WithTransport(reg.Transport), cosign.WithKeychain(reg.Keychain())}
	c := newCosignRun(t, reg)
	ours := newPKI(t, "ours")
	key, certPEM := certKey(t, ours, trusted, goodLeaf)
	chainPath := c.file("chain.pem", ours.chainPEM())

	// This package signs with the certificate; the CLI verifies.
	d := pushImage(t, reg.Host, "team/app", "ours", reg.RemoteOptions()...)
	signAndAttestWith(t, key, d, auth...)
	out := c.ok(cliVerifyCert("verify", chainPath, workflow, gha, d.String())...)
	assert.Contains(t, out, d.DigestStr())
	assert.Contains(t, out, "The code-signing certificate was verified using trusted certificate authority certificates")
	out = c.ok(cliVerifyCert("verify-attestation", chainPath, workflow, gha, "--type", "slsaprovenance1", d.String())...)
	assert.Contains(t, envelopeStatements(t, out), `"predicateType":"https://slsa.dev/provenance/v1"`)
	out = c.fails(cliVerifyCert("verify", chainPath, "https://github.com/evil/app/.github/workflows/release.yml@refs/heads/main", gha, d.String())...)
	assert.Contains(t, out, "none of the expected identities matched")
	out = c.fails(cliVerifyCert("verify", c.file("other-chain.pem", newPKI(t, "other").chainPEM()), workflow, gha, d.String())...)
	assert.Contains(t, out, "certificate signed by unknown authority")

	// The CLI signs and attests with the certificate; this package verifies.
	privPath, _, err := trusted.pair.WriteFiles(c.dir)
	require.NoError(t, err)
	certPath := c.file("leaf.pem", certPEM)
	theirs := pushImage(t, reg.Host, "team/app", "theirs", reg.RemoteOptions()...)
	withCert := []string{"--key", privPath, "--certificate", certPath, "--certificate-chain", chainPath, "--tlog-upload=false", "--yes"}
	c.ok(append(append([]string{"sign"}, withCert...), theirs.String())...)
	_, vuln, prov := predicates(t, sourceRepo)
	for typ, p := range map[string]sign.Predicate{"slsaprovenance1": prov, "vuln": vuln} {
		c.ok(append(append([]string{"attest"}, withCert...), "--type", typ, "--predicate", c.file(typ+".json", p.Body), theirs.String())...)
	}
	policy := certPolicy(ours.identity())
	policy.Conditions = policy.Conditions[1:] // the CLI attested no SBOM
	got, err := newVerifier(t, policy, auth...).Verify(ctx, theirs)
	require.NoError(t, err)
	assert.Equal(t, []string{"release-workflow"}, got.Signers)
	assert.Len(t, got.Attestations, 2)

	// A regular expression for the identity, as cosign's --certificate-identity-regexp.
	re := ours.identity()
	re.Subject, re.SubjectRegexp = "", `https://github\.com/example/app/\.github/workflows/.*`
	policy.TrustedIdentities = []sign.TrustedIdentity{re}
	_, err = newVerifier(t, policy, auth...).Verify(ctx, theirs)
	require.NoError(t, err)
}

// TestCosignCLICertificateAttacks runs the attacks on certificate signatures and
// checks that the cosign CLI refuses each image too: this package is not more
// lenient than cosign verify.
func TestCosignCLICertificateAttacks(t *testing.T) {
	c := newCosignRun(t, nil)
	ours, theirs := newPKI(t, "ours"), newPKI(t, "theirs")
	chainPath := c.file("chain.pem", ours.chainPEM())
	for _, tc := range certAttacks(ours, theirs) {
		t.Run(tc.name, func(t *testing.T) {
			host := newRegistry(t)
			d := pushImage(t, host, "team/app", "v1")
			target := tc.attack(t, host, d)
			_, err := newVerifier(t, certPolicy(ours.identity())).Verify(context.Background(), target)
			require.ErrorIs(t, err, sign.ErrDenied)
			sub := *c
			sub.t = t
			args := cliVerifyCert("verify", chainPath, workflow, gha, target.String())
			if tc.onAttestation {
				args = cliVerifyCert("verify-attestation", chainPath, workflow, gha, "--type", "slsaprovenance1", target.String())
			}
			t.Log(sub.fails(args...))
		})
	}

	// And the CLI accepts what the policy accepts, on the same in-process registry.
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	key, _ := certKey(t, ours, trusted, testca.Leaf{URIs: []string{workflow}, Issuer: gha})
	signAndAttestWith(t, key, d)
	_, err := newVerifier(t, certPolicy(ours.identity())).Verify(context.Background(), d)
	require.NoError(t, err)
	c.ok(cliVerifyCert("verify", chainPath, workflow, gha, d.String())...)
}
