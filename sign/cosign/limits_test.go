package cosign_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/mesh"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

func TestLimitOptionsValidated(t *testing.T) {
	p := sign.Policy{TrustedKeys: []sign.TrustedKey{trusted.trustedKey()}}
	for _, tc := range []struct {
		opt  cosign.Option
		want string
	}{
		{cosign.WithMaxLayers(0), "cosign.WithMaxLayers(0): must be at least 1"},
		{cosign.WithMaxPayloadSize(-1), "cosign.WithMaxPayloadSize(-1): must be at least 1"},
		{cosign.WithConcurrency(0), "cosign.WithConcurrency(0): must be at least 1"},
		{cosign.WithMaxPlatforms(-3), "cosign.WithMaxPlatforms(-3): must be at least 1"},
	} {
		_, err := cosign.NewVerifier(p, tc.opt)
		require.ErrorIs(t, err, cosign.ErrInvalidOption)
		assert.ErrorIs(t, err, mesh.ErrInvalidOption, "one sentinel across stages (deploy's too)")
		assert.ErrorContains(t, err, tc.want)
		_, err = cosign.NewSigner(trusted.key, tc.opt)
		require.ErrorIs(t, err, cosign.ErrInvalidOption)
	}
	_, err := cosign.NewVerifier(p, cosign.WithMaxLayers(1), cosign.WithMaxPayloadSize(1), cosign.WithConcurrency(1), cosign.WithMaxPlatforms(1))
	require.NoError(t, err)
}

// TestLimits verifies a signed and attested image in the in-process registry with
// limits just below what it holds: each is a denial that names the limit, and the
// same image passes at the limits it needs.
func TestLimits(t *testing.T) {
	ctx := context.Background()
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	signAndAttest(t, trusted, d, sourceRepo, legacy)
	policy := fullPolicy(trusted.trustedKey())

	tag, err := ociremote.AttestationTag(d)
	require.NoError(t, err)
	img, err := remote.Image(tag)
	require.NoError(t, err)
	m, err := img.Manifest()
	require.NoError(t, err)
	require.Len(t, m.Layers, 3)
	var largest int64
	for _, l := range m.Layers {
		largest = max(largest, l.Size)
	}

	_, err = newVerifier(t, policy, cosign.WithMaxLayers(2)).Verify(ctx, d)
	var denied *sign.DeniedError
	require.ErrorAs(t, err, &denied)
	assert.Contains(t, err.Error(), "the attestation tag lists 3 layers, more than the limit of 2 (cosign.WithMaxLayers); none was read")

	_, err = newVerifier(t, policy, cosign.WithMaxPayloadSize(largest-1)).Verify(ctx, d)
	require.ErrorAs(t, err, &denied)
	assert.Contains(t, err.Error(), fmt.Sprintf("its descriptor declares %d bytes, more than the limit of %d (cosign.WithMaxPayloadSize); it was not read", largest, largest-1))
	assert.False(t, denied.Has(sign.ReasonUntrustedAttestation), "the other layers verified: %v", denied.Reasons)

	got, err := newVerifier(t, policy, cosign.WithMaxLayers(3), cosign.WithMaxPayloadSize(largest), cosign.WithConcurrency(1)).Verify(ctx, d)
	require.NoError(t, err)
	assert.Len(t, got.Attestations, 3)
}

// TestLargeSBOM attests an SBOM of 5 MiB of JSON (6.7 MiB once in its DSSE
// envelope, the size of a full distribution image's SPDX document) and verifies it
// with the default limits.
func TestLargeSBOM(t *testing.T) {
	ctx := context.Background()
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	s := newSigner(t, trusted)
	require.NoError(t, s.Sign(ctx, d))
	var b strings.Builder
	b.WriteString(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"app","packages":[`)
	for i := 0; b.Len() < 5<<20; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"SPDXID":"SPDXRef-Package-deb-libexample%d","name":"libexample%d","versionInfo":"1.2.%d-1+deb12u1","licenseConcluded":"NOASSERTION","downloadLocation":"NOASSERTION"}`, i, i, i)
	}
	b.WriteString(`]}`)
	require.NoError(t, s.Attest(ctx, d, sign.SPDX([]byte(b.String()))))
	got, err := newVerifier(t, sign.Policy{TrustedKeys: []sign.TrustedKey{trusted.trustedKey()},
		Conditions: []sign.Condition{sign.SBOMExists()}}).Verify(ctx, d)
	require.NoError(t, err)
	require.Len(t, got.Attestations, 1)
	assert.Greater(t, len(got.Attestations[0].Predicate), 5<<20)
}
