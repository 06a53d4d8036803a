package cosign

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"

	"github.com/shipkit/shipkit/sign"
)

// LoadKMSKey returns a signing key held in a KMS, named by ref as cosign's --key
// takes it: awskms:///ARN, gcpkms://projects/…/cryptoKeyVersions/N,
// azurekms://VAULT.vault.azure.net/KEY, hashivault://KEY, or NAME://… for a
// sigstore KMS plugin program (sigstore-kms-NAME on the PATH). The key never leaves
// the KMS; signing calls it.
//
// shipkit links no cloud provider: a program registers the ones it wants by
// importing them, for example
//
//	import _ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
//
// and configures them as their SDK does (environment, instance roles). A reference
// whose provider is not registered gives an error that says so.
func LoadKMSKey(ctx context.Context, ref string, opts ...signature.RPCOption) (*PrivateKey, error) {
	sv, err := kmsGet(ctx, ref, opts...)
	if err != nil {
		return nil, err
	}
	return newPrivateKey(ctx, sv, "KMS key "+ref)
}

// KMSTrustedKey returns the public key of the KMS key ref as a [sign.TrustedKey]
// named name (empty: named by its fingerprint), so that a policy trusts what
// [LoadKMSKey]'s key signs, as cosign verify --key REF does.
func KMSTrustedKey(ctx context.Context, ref, name string, opts ...signature.RPCOption) (sign.TrustedKey, error) {
	sv, err := kmsGet(ctx, ref, opts...)
	if err != nil {
		return sign.TrustedKey{}, err
	}
	pub, err := sv.PublicKey(sigopts.WithContext(ctx))
	if err != nil {
		return sign.TrustedKey{}, fmt.Errorf("KMS key %s: public key: %w", ref, err)
	}
	pemBytes, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return sign.TrustedKey{}, fmt.Errorf("KMS key %s: encode public key: %w", ref, err)
	}
	return sign.TrustedKey{Name: name, PEM: pemBytes}, nil
}

func kmsGet(ctx context.Context, ref string, opts ...signature.RPCOption) (kms.SignerVerifier, error) {
	sv, err := kms.Get(ctx, ref, crypto.SHA256, opts...)
	var nf *kms.ProviderNotFoundError
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("KMS key %s: no KMS provider registered for it: import the provider's package "+
			"(e.g. _ \"github.com/sigstore/sigstore/pkg/signature/kms/aws\") or install its sigstore KMS plugin: %w", ref, err)
	}
	if err != nil {
		return nil, fmt.Errorf("KMS key %s: %w", ref, err)
	}
	return sv, nil
}
