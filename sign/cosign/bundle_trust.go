package cosign

// This file is the seam between a compiled policy and sigstore-go: the one place
// that turns what a [Verifier] trusts into sigstore-go trusted material
// (root.TrustedMaterial), verifier options (timestamps, logs) and policy options
// (a key, a certificate identity). Every sigstore bundle, whatever its discovery
// path, is verified under the authorities bundleAuthorities returns and nothing
// else; the policy on top (thresholds, predicates, conditions) then judges it
// with the legacy layout's signatures and attestations.
//
// A trusted key is one authority: its public key as the only trusted material,
// verify.WithKey() as policy, and verify.WithNoObserverTimestamps() (a key proves
// nothing about time, as cosign v3 verifies a key-based bundle offline, and a
// log entry the bundle may carry is not required; see [checkLogEntries] for what
// is checked of it).
//
// Keyless trust (a trusted_root.json with Fulcio CAs, Rekor logs and timestamp
// authorities, and certificate identities) is not an authority here: a bundle
// made with a certificate goes to keylessCheck (keyless.go) with the root of
// WithTrustedRoot and all the policy's identities. It verifies the bundle once
// with sigstore-go against the root (the verifier the TrustedRoot compiled at
// load), picks the identity its certificate names through sign.TrustedIdentity
// (the one owner of identity matching: exact or anchored regexp), and diagnoses
// a failure step by step into a named reason.

import (
	"fmt"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
)

// bundleAuthority is one trust anchor a sigstore bundle can verify under, and the
// signer a bundle verified under it is counted as.
type bundleAuthority struct {
	// signer names the trusted key or identity; signatures count toward the
	// policy's threshold by its fingerprint, the same fingerprint the legacy
	// layout's signatures by the same key or identity count under.
	signer signer
	// verifier is sigstore-go's verifier over the authority's trusted material,
	// with the timestamp and log requirements the authority needs.
	verifier *verify.Verifier
	// policy are the policy options a bundle is verified with under this
	// authority (besides the artifact): verify.WithKey() for a key,
	// verify.WithCertificateIdentity(…) for a certificate identity.
	policy []verify.PolicyOption
	// certificate is true for an authority that trusts certificates (keyless),
	// false for one that trusts a key: a bundle's verification material (a public
	// key hint or a certificate) picks which authorities are tried.
	certificate bool
}

// bundleAuthorities compiles what v trusts into sigstore-go authorities, in the
// policy's order: the trusted keys (keyless identities are judged by
// keylessCheck: see the file's comment). It is called once, by [NewVerifier].
func (v *Verifier) bundleAuthorities() ([]bundleAuthority, error) {
	var out []bundleAuthority
	for i := range v.keys {
		k := &v.keys[i]
		key := root.NewExpiringKey(k.verifier, time.Time{}, time.Time{})
		material := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return key, nil })
		sv, err := verify.NewVerifier(material, verify.WithNoObserverTimestamps())
		if err != nil {
			return nil, fmt.Errorf("trusted key %s: %w", k.name, err)
		}
		out = append(out, bundleAuthority{
			signer:   signer{name: k.name, fingerprint: k.fingerprint},
			verifier: sv,
			policy:   []verify.PolicyOption{verify.WithKey()},
		})
	}
	return out, nil
}
