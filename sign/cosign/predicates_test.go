package cosign_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/sign"
)

// simpleSigning is cosign's simple signing payload, the part the tests read.
type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			Digest string `json:"docker-manifest-digest"`
		} `json:"image"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// TestSignAnnotations signs with sign.WithAnnotations (twice: the options merge)
// and reads the signature back from the registry: the annotations are in the
// payload's "optional" section beside the digest, the signature covers them (the
// payload as stored verifies with the key), and an annotation changed after signing
// makes the verifier refuse the signature. A signature without annotations carries
// none.
func TestSignAnnotations(t *testing.T) {
	ctx := context.Background()
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	s := newSigner(t, trusted, legacy)
	require.NoError(t, s.Sign(ctx, d,
		sign.WithAnnotations(map[string]string{"pipeline": "release", "git.sha": "9f2c1e0"}),
		sign.WithAnnotations(map[string]string{"approved-by": "alice"})))

	sigs := readLayers(t, d, ociremote.SignatureTag)
	require.Len(t, sigs, 1)
	payload, err := sigs[0].Payload()
	require.NoError(t, err)
	var p simpleSigning
	require.NoError(t, json.Unmarshal(payload, &p))
	assert.Equal(t, map[string]any{"pipeline": "release", "git.sha": "9f2c1e0", "approved-by": "alice"}, p.Optional)
	assert.Equal(t, d.DigestStr(), p.Critical.Image.Digest)
	assert.Equal(t, d.Context().Name(), p.Critical.Identity.DockerReference)

	b64, err := sigs[0].Base64Signature()
	require.NoError(t, err)
	raw, err := base64.StdEncoding.DecodeString(b64)
	require.NoError(t, err)
	sv, err := signature.LoadVerifier(publicKey(t, trusted), crypto.SHA256)
	require.NoError(t, err)
	require.NoError(t, sv.VerifySignature(bytes.NewReader(raw), bytes.NewReader(payload)), "the annotations are signed")

	policy := sign.Policy{TrustedKeys: []sign.TrustedKey{trusted.trustedKey()}}
	_, err = newVerifier(t, policy).Verify(ctx, d)
	require.NoError(t, err)
	replaceSignature(t, d, func(payload []byte, b64 string) ([]byte, string) {
		return bytes.Replace(payload, []byte(`"alice"`), []byte(`"mallory"`), 1), b64
	})
	_, err = newVerifier(t, policy).Verify(ctx, d)
	var denied *sign.DeniedError
	require.ErrorAs(t, err, &denied)
	assert.True(t, denied.Has(sign.ReasonUntrustedSignature), "%v", err)

	plain := pushImage(t, host, "team/app", "plain")
	require.NoError(t, s.Sign(ctx, plain))
	sigs = readLayers(t, plain, ociremote.SignatureTag)
	require.Len(t, sigs, 1)
	payload, err = sigs[0].Payload()
	require.NoError(t, err)
	p = simpleSigning{}
	require.NoError(t, json.Unmarshal(payload, &p))
	assert.Empty(t, p.Optional)
}

// cycloneDXBOM is a small CycloneDX 1.5 JSON BOM.
const cycloneDXBOM = `{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,` +
	`"metadata":{"component":{"type":"container","name":"team/app"}},` +
	`"components":[{"type":"library","name":"golang.org/x/net","version":"v0.45.0","purl":"pkg:golang/golang.org/x/net@v0.45.0"}]}`

// TestCycloneDXAttestation attests a CycloneDX BOM (sign.CycloneDX) and verifies
// it by its predicate type: a policy that requires CycloneDX (and an SBOM) passes
// and returns the BOM as signed; one that requires SPDX does not take the CycloneDX
// BOM for it.
func TestCycloneDXAttestation(t *testing.T) {
	ctx := context.Background()
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	s := newSigner(t, trusted)
	require.NoError(t, s.Sign(ctx, d))
	p := sign.CycloneDX([]byte(cycloneDXBOM))
	require.Equal(t, sign.PredicateCycloneDX, p.Type)
	require.NoError(t, s.Attest(ctx, d, p))

	got, err := newVerifier(t, sign.Policy{
		TrustedKeys:        []sign.TrustedKey{trusted.trustedKey()},
		RequiredPredicates: []string{sign.PredicateCycloneDX},
		Conditions:         []sign.Condition{sign.SBOMExists()},
	}).Verify(ctx, d)
	require.NoError(t, err)
	require.Len(t, got.Attestations, 1)
	assert.Equal(t, "https://cyclonedx.org/bom", got.Attestations[0].PredicateType)
	assert.Equal(t, "trusted", got.Attestations[0].Signer)
	assert.JSONEq(t, cycloneDXBOM, string(got.Attestations[0].Predicate))

	_, err = newVerifier(t, sign.Policy{
		TrustedKeys:        []sign.TrustedKey{trusted.trustedKey()},
		RequiredPredicates: []string{sign.PredicateSPDX},
	}).Verify(ctx, d)
	var denied *sign.DeniedError
	require.True(t, errors.As(err, &denied), "want a denial, got %v", err)
	assert.True(t, denied.Has(sign.ReasonMissingAttestation))
	assert.Contains(t, err.Error(), "no attestation of predicate type "+sign.PredicateSPDX)
}
