package cosign_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// cosign3CLI returns the path of the cosign v3 CLI that hack/testbed.sh installs.
func cosign3CLI(t *testing.T) string {
	t.Helper()
	bin := testbed.ToolPath("cosign", "v3.1.3")
	if _, err := os.Stat(bin); err != nil {
		testbed.Check(t, testbed.Missingf("cosign CLI v3.1.3 not at %s (GOBIN=%s go install github.com/sigstore/cosign/v3/cmd/cosign@v3.1.3)", bin, filepath.Dir(bin)))
	}
	return bin
}

// v3Offline are the flags cosign v3 signs and attests with a key offline: no
// transparency log upload, and no signing config (which v3 would otherwise fetch
// from the public sigstore's TUF repository). The bundle format is v3's default.
var v3Offline = []string{"--tlog-upload=false", "--use-signing-config=false", "--yes"}

// TestCosignV3Interop checks compatibility with the cosign v3 CLI both ways, in
// the bundle layout, on the distribution server (no referrers API: the referrers
// tag schema) and on the in-process registry with the referrers API: cosign v3
// verifies and verify-attestations what this package signs and attests (and
// rejects it with another key), and this package verifies what cosign v3 signs and
// attests with a key this package made.
func TestCosignV3Interop(t *testing.T) {
	bin := cosign3CLI(t)
	type regCase struct {
		host string
		reg  *registry.Distribution
		opts []cosign.Option
		ro   []remote.Option
	}
	cases := map[string]func() regCase{
		"distribution (referrers tag)": func() regCase {
			reg := distribution.Get(t)
			return regCase{host: reg.Host, reg: reg, ro: reg.RemoteOptions(),
				opts: []cosign.Option{cosign.WithTransport(reg.Transport), cosign.WithKeychain(reg.Keychain())}}
		},
		"in-process (referrers API)": func() regCase { return regCase{host: newReferrersRegistry(t)} },
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			rc := mk()
			ctx := context.Background()
			c := newCosignRun(t, rc.reg)
			c.bin = bin
			privPath, pubPath, err := trusted.pair.WriteFiles(c.dir)
			require.NoError(t, err)
			otherDir := filepath.Join(c.dir, "other")
			require.NoError(t, os.Mkdir(otherDir, 0o700))
			_, otherPub, err := untrusted.pair.WriteFiles(otherDir)
			require.NoError(t, err)
			insecure := []string{}
			if rc.reg == nil {
				insecure = []string{"--allow-insecure-registry", "--allow-http-registry"}
			}
			args := func(a ...string) []string { return append(a, insecure...) }

			// This package signs and attests (bundles, the default); cosign v3 verifies.
			d := pushImage(t, rc.host, "team/app", "ours", rc.ro...)
			signAndAttest(t, trusted, d, sourceRepo, rc.opts...)
			out := c.ok(args("verify", "--key", pubPath, "--insecure-ignore-tlog", d.String())...)
			assert.Contains(t, out, d.DigestStr())
			for typ, predicateType := range map[string]string{
				"slsaprovenance1": sign.PredicateSLSAProvenance,
				"vuln":            sign.PredicateVuln,
				"spdxjson":        sign.PredicateSPDX,
			} {
				out = c.ok(args("verify-attestation", "--key", pubPath, "--insecure-ignore-tlog", "--type", typ, d.String())...)
				assert.Contains(t, envelopeStatements(t, out), `"predicateType":"`+predicateType+`"`, typ)
			}
			c.fails(args("verify", "--key", otherPub, "--insecure-ignore-tlog", d.String())...)
			c.fails(args("verify-attestation", "--key", otherPub, "--insecure-ignore-tlog", "--type", "vuln", d.String())...)

			// cosign v3 signs and attests with this package's key; this package verifies.
			theirs := pushImage(t, rc.host, "team/app", "theirs", rc.ro...)
			c.ok(args(append([]string{"sign", "--key", privPath}, append(v3Offline, theirs.String())...)...)...)
			_, vuln, prov := predicates(t, sourceRepo)
			for typ, p := range map[string]sign.Predicate{"slsaprovenance1": prov, "vuln": vuln} {
				f := c.file(typ+".json", p.Body)
				c.ok(args(append([]string{"attest", "--key", privPath, "--type", typ, "--predicate", f}, append(v3Offline, theirs.String())...)...)...)
			}
			assertNoLegacyTags(t, theirs, rc.ro)
			policy := fullPolicy(trusted.trustedKey())
			policy.Conditions = policy.Conditions[1:] // cosign attested no SBOM
			got, err := newVerifier(t, policy, rc.opts...).Verify(ctx, theirs)
			require.NoError(t, err)
			assert.Equal(t, []string{"trusted"}, got.Signers)
			assert.Len(t, got.Attestations, 2)
			_, err = newVerifier(t, fullPolicy(untrusted.trustedKey()), rc.opts...).Verify(ctx, theirs)
			require.ErrorIs(t, err, sign.ErrDenied)
		})
	}
}

// assertNoLegacyTags checks that cosign v3 wrote no .sig or .att tag for d: what
// verified came from the bundles.
func assertNoLegacyTags(t *testing.T, d name.Digest, ro []remote.Option) {
	t.Helper()
	base := strings.Replace(d.DigestStr(), ":", "-", 1)
	for _, suffix := range []string{".sig", ".att"} {
		_, err := remote.Head(d.Context().Tag(base+suffix), ro...)
		assert.Error(t, err, "cosign v3 wrote a %s tag", suffix)
	}
}
