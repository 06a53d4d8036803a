package cosign_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

var distribution = testbed.Lazy[*registry.Distribution]{Start: registry.Start}

func TestMain(m *testing.M) {
	code := m.Run()
	distribution.Stop()
	os.Exit(code)
}

// TestDistribution signs and attests an image in the CNCF distribution registry (TLS
// from a private CA, htpasswd auth) and verifies it there; without credentials the
// verifier reports a registry error, not a denial.
func TestDistribution(t *testing.T) {
	reg := distribution.Get(t)
	ctx := context.Background()
	auth := []cosign.Option{cosign.WithTransport(reg.Transport), cosign.WithKeychain(reg.Keychain())}
	d := pushImage(t, reg.Host, "team/app", "v1", reg.RemoteOptions()...)
	signAndAttest(t, trusted, d, sourceRepo, auth...)

	got, err := newVerifier(t, fullPolicy(trusted.trustedKey()), auth...).Verify(ctx, d)
	require.NoError(t, err)
	assert.Equal(t, []string{"trusted"}, got.Signers)
	assert.Len(t, got.Attestations, 3)

	_, err = newVerifier(t, fullPolicy(trusted.trustedKey()), cosign.WithTransport(reg.Transport),
		cosign.WithKeychain(authn.NewMultiKeychain())).Verify(ctx, d)
	require.Error(t, err)
	assert.NotErrorIs(t, err, sign.ErrDenied, "a registry that refuses us is not a verdict")
	assert.Contains(t, err.Error(), "UNAUTHORIZED")
}

// cosignCLI returns the path of the cosign CLI that hack/testbed.sh installs.
func cosignCLI(t *testing.T) string {
	t.Helper()
	bin := testbed.ToolPath("cosign", "v2.6.5")
	if _, err := os.Stat(bin); err != nil {
		testbed.Check(t, testbed.Missingf("cosign CLI v2.6.5 not at %s (GOBIN=%s go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5)", bin, filepath.Dir(bin)))
	}
	return bin
}

// cosignRun runs the cosign CLI with a home, TUF root and Docker config of its own
// (credentials for reg when it is not nil) and the password of the test keys.
type cosignRun struct {
	t   *testing.T
	bin string
	dir string
	env []string
}

func newCosignRun(t *testing.T, reg *registry.Distribution) *cosignRun {
	t.Helper()
	c := &cosignRun{t: t, bin: cosignCLI(t), dir: t.TempDir()}
	dockerDir := filepath.Join(c.dir, "docker")
	require.NoError(t, os.Mkdir(dockerDir, 0o700))
	c.env = append(os.Environ(), "DOCKER_CONFIG="+dockerDir, "COSIGN_PASSWORD="+string(password),
		"TUF_ROOT="+filepath.Join(c.dir, "tuf"), "HOME="+c.dir)
	if reg != nil {
		caPath := filepath.Join(c.dir, "ca.crt")
		require.NoError(t, os.WriteFile(caPath, reg.CACertPEM, 0o600))
		cfg, err := json.Marshal(map[string]any{"auths": map[string]any{reg.Host: map[string]string{
			"auth": base64.StdEncoding.EncodeToString([]byte(reg.Username + ":" + reg.Password))}}})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dockerDir, "config.json"), cfg, 0o600))
		c.env = append(c.env, "SSL_CERT_FILE="+caPath)
	}
	return c
}

// file writes data to a file of the run's directory and returns its path.
func (c *cosignRun) file(name string, data []byte) string {
	c.t.Helper()
	p := filepath.Join(c.dir, name)
	require.NoError(c.t, os.WriteFile(p, data, 0o600))
	return p
}

func (c *cosignRun) exec(args ...string) (string, error) {
	cmd := exec.CommandContext(c.t.Context(), c.bin, args...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ok runs cosign and requires it to succeed.
func (c *cosignRun) ok(args ...string) string {
	c.t.Helper()
	out, err := c.exec(args...)
	require.NoError(c.t, err, "cosign %v:\n%s", args, out)
	return out
}

// fails runs cosign and requires it to fail.
func (c *cosignRun) fails(args ...string) string {
	c.t.Helper()
	out, err := c.exec(args...)
	require.Error(c.t, err, "cosign %v accepted:\n%s", args, out)
	return out
}

// TestCosignCLIInterop checks compatibility both ways against the distribution
// registry: the cosign CLI verifies what this package signed and attested, and this
// package verifies what the CLI signed and attested with a key this package made.
func TestCosignCLIInterop(t *testing.T) {
	reg := distribution.Get(t)
	ctx := context.Background()
	auth := []cosign.Option{cosign.WithTransport(reg.Transport), cosign.WithKeychain(reg.Keychain())}
	c := newCosignRun(t, reg)
	privPath, pubPath, err := trusted.pair.WriteFiles(c.dir)
	require.NoError(t, err)
	run := c.ok

	// This package signs; the CLI verifies.
	// signAndAttest signs with the annotation pipeline=test and attests SPDX,
	// vulnerabilities and provenance; a CycloneDX BOM is attested on top.
	d := pushImage(t, reg.Host, "team/app", "ours", reg.RemoteOptions()...)
	// cosign v2 reads the legacy layout (it asks for a trusted root before reading
	// bundles): this package writes it when asked.
	signAndAttest(t, trusted, d, sourceRepo, append(auth, legacy)...)
	require.NoError(t, newSigner(t, trusted, append(auth, legacy)...).Attest(ctx, d, sign.CycloneDX([]byte(cycloneDXBOM))))
	out := run("verify", "--key", pubPath, "--insecure-ignore-tlog", d.String())
	assert.Contains(t, out, d.DigestStr())
	out = run("verify", "--key", pubPath, "--insecure-ignore-tlog", "-a", "pipeline=test", d.String())
	assert.Contains(t, out, `"pipeline":"test"`)
	out = c.fails("verify", "--key", pubPath, "--insecure-ignore-tlog", "-a", "pipeline=release", d.String())
	assert.Contains(t, out, "no matching signatures")
	for typ, predicateType := range map[string]string{
		"slsaprovenance1": sign.PredicateSLSAProvenance,
		"vuln":            sign.PredicateVuln,
		"spdxjson":        sign.PredicateSPDX,
		"cyclonedx":       sign.PredicateCycloneDX,
	} {
		out = run("verify-attestation", "--key", pubPath, "--insecure-ignore-tlog", "--type", typ, d.String())
		assert.Contains(t, out, "The signatures were verified against the specified public key", typ)
		assert.Contains(t, envelopeStatements(t, out), `"predicateType":"`+predicateType+`"`, typ)
	}

	// The CLI signs and attests with this package's key; this package verifies.
	theirs := pushImage(t, reg.Host, "team/app", "theirs", reg.RemoteOptions()...)
	run("sign", "--key", privPath, "--tlog-upload=false", "--yes", theirs.String())
	_, vuln, prov := predicates(t, sourceRepo)
	for typ, p := range map[string]sign.Predicate{"slsaprovenance1": prov, "vuln": vuln} {
		f := c.file(typ+".json", p.Body)
		run("attest", "--key", privPath, "--tlog-upload=false", "--yes", "--type", typ, "--predicate", f, theirs.String())
	}
	policy := fullPolicy(trusted.trustedKey())
	policy.Conditions = policy.Conditions[1:] // the CLI attested no SBOM
	got, err := newVerifier(t, policy, auth...).Verify(ctx, theirs)
	require.NoError(t, err)
	assert.Equal(t, []string{"trusted"}, got.Signers)
	assert.Len(t, got.Attestations, 2)
}

// envelopeStatements decodes the in-toto statements of the DSSE envelopes that
// cosign verify-attestation prints, one JSON object a line.
func envelopeStatements(t *testing.T, out string) string {
	t.Helper()
	var sb strings.Builder
	for _, line := range strings.Split(out, "\n") {
		var env struct {
			Payload []byte `json:"payload"`
		}
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &env) != nil {
			continue
		}
		sb.Write(env.Payload)
		sb.WriteString("\n")
	}
	require.NotEmpty(t, sb.String(), "no envelope in cosign's output:\n%s", out)
	return sb.String()
}
