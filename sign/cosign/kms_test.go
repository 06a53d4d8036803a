package cosign_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms/fake" // registers fakekms://, as a program registers awskms:// by importing …/kms/aws
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// kmsContext returns a context under which sigstore's fake KMS holds one fixed key
// (without it every fakekms:// reference is a new random key).
func kmsContext(t *testing.T) context.Context {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return context.WithValue(context.Background(), fake.KmsCtxKey{}, priv)
}

// TestKMS signs and attests with a key in a KMS, the key's public key fetched from
// the KMS as the policy's trusted key, and verifies through the policy.
func TestKMS(t *testing.T) {
	ctx := kmsContext(t)
	const ref = "fakekms://release-signing"
	key, err := cosign.LoadKMSKey(ctx, ref)
	require.NoError(t, err)
	assert.Regexp(t, `^KMS key fakekms://release-signing sha256:[0-9a-f]{16}$`, key.String())
	tk, err := cosign.KMSTrustedKey(ctx, ref, "kms")
	require.NoError(t, err)
	assert.Equal(t, key.PublicKeyPEM(), tk.PEM, "the trusted key is the KMS key's public key")

	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	s, err := cosign.NewSigner(key)
	require.NoError(t, err)
	require.NoError(t, s.Sign(ctx, d))
	sbom, vuln, prov := predicates(t, sourceRepo)
	for _, p := range []sign.Predicate{sbom, vuln, prov} {
		require.NoError(t, s.Attest(ctx, d, p))
	}
	got, err := newVerifier(t, fullPolicy(tk)).Verify(ctx, d)
	require.NoError(t, err)
	assert.Equal(t, []string{"kms"}, got.Signers)
	for _, a := range got.Attestations {
		assert.Equal(t, "kms", a.Signer)
	}

	// Another KMS key (a fresh one: no key in the context) is not trusted.
	other, err := cosign.KMSTrustedKey(context.Background(), ref, "other")
	require.NoError(t, err)
	require.NotEqual(t, tk.PEM, other.PEM)
	_, err = newVerifier(t, fullPolicy(other)).Verify(ctx, d)
	var denied *sign.DeniedError
	require.ErrorAs(t, err, &denied)
	assert.True(t, denied.Has(sign.ReasonUntrustedSignature), denied.Reasons)
}

// TestNewPrivateKey signs with a sigstore signer the caller made (here an in-memory
// one; a hardware token or custom KMS client works alike).
func TestNewPrivateKey(t *testing.T) {
	ctx := context.Background()
	sv, _, err := signature.NewDefaultECDSASignerVerifier()
	require.NoError(t, err)
	key, err := cosign.NewPrivateKey(ctx, sv)
	require.NoError(t, err)
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	s, err := cosign.NewSigner(key)
	require.NoError(t, err)
	require.NoError(t, s.Sign(ctx, d))
	got, err := newVerifier(t, sign.Policy{TrustedKeys: []sign.TrustedKey{key.TrustedKey("mine")}}).Verify(ctx, d)
	require.NoError(t, err)
	assert.Equal(t, []string{"mine"}, got.Signers)

	_, err = cosign.NewPrivateKey(ctx, nil)
	assert.Error(t, err)
}

func TestKMSErrors(t *testing.T) {
	ctx := context.Background()
	_, err := cosign.LoadKMSKey(ctx, "nosuchkms://key")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no KMS provider registered for it: import the provider's package")
	_, err = cosign.KMSTrustedKey(ctx, "awskms:///arn:aws:kms:eu-west-1:1:key/x", "")
	require.Error(t, err, "the AWS provider is not linked into shipkit")
	assert.Contains(t, err.Error(), "KMS key awskms:///arn:aws:kms:eu-west-1:1:key/x: no KMS provider registered")
}

func ExampleLoadKMSKey() {
	// A program links the KMS providers it wants, e.g.
	//   import _ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	// and names the key as cosign's --key does. Here: sigstore's fake KMS.
	ctx := context.Background()
	key, err := cosign.LoadKMSKey(ctx, "fakekms://release")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(key.String()[:len("KMS key fakekms://release sha256:")])
	_, err = cosign.LoadKMSKey(ctx, "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1")
	fmt.Println(err != nil)
	// Output:
	// KMS key fakekms://release sha256:
	// true
}
