// Package cosign signs and attests images, and verifies them against a
// [sign.Policy], in the cosign CLI's formats and registry layouts, so that cosign
// v3 and v2 verify what this package signs and this package verifies what they
// sign.
//
// Two layouts exist. cosign v3 (the default since October 2025) writes sigstore
// bundles (application/vnd.dev.sigstore.bundle.v0.3+json): each signature and
// each attestation is an OCI 1.1 artifact whose subject is the image, found
// through the registry's referrers API or, where the registry has none (the
// distribution server before v3), through the referrers tag schema (an index
// tagged sha256-HEX). An image signature is then a DSSE envelope of an in-toto
// statement of type https://sigstore.dev/cosign/sign/v1 about the image's digest;
// an attestation, one of the predicate's type. cosign v2 wrote the legacy layout:
// the tag sha256-HEX.sig holds simple signing payloads and sha256-HEX.att DSSE
// envelopes.
//
// A [Signer] writes bundles by default ([WithFormat] chooses): they are what
// cosign v3's sign and attest write and its verify and verify-attestation read
// first, what Tekton Chains and GitHub's artifact attestations publish, and one
// artifact per signature, so a new signature never rewrites the others' tag. A key
// with a certificate keeps the legacy layout by default (see [FormatDefault]). A
// [Verifier] reads both layouts of every image, without being told which: the
// referrers (API, then tag schema) and the legacy tags, and its policy judges
// every signature and attestation alike (thresholds count a key once whatever
// layout it signed in; required predicates and conditions see all attestations).
// sigstore-go verifies the bundles; what they are trusted under is compiled from
// the policy in one place (bundle_trust.go).
//
// Signing keys are cosign key pairs (a private key encrypted with a password in
// cosign's PEM format, the CLI's cosign.key, and a PEM public key, cosign.pub), keys
// in a KMS ([LoadKMSKey], with the provider the program links), or any sigstore
// signer ([NewPrivateKey]). A key may carry a certificate and its chain
// ([PrivateKey.WithCertificate]), as cosign sign --certificate --certificate-chain
// attaches them; a policy then trusts the certificate's identity under given roots
// ([sign.TrustedIdentity]). That is how a company PKI signs, and where a
// certificate from Fulcio plugs in.
//
// Signing with a key sends nothing to a transparency log (Rekor), a timestamp
// authority or a certificate authority, and verification never asks one: it works
// offline. Without a log or timestamp, nothing proves when a signature was made, so
// a legacy signature with a certificate verifies only while the certificate is
// valid (as with cosign verify --insecure-ignore-tlog).
//
// Keyless signing is the exception that asks the network, and only at signing: a
// [KeylessSigner] exchanges a caller-supplied OIDC token ([TokenSource]) for a
// short-lived Fulcio certificate ([KeylessSigner.Key]), and each bundle signed
// with it gets a Rekor entry and, when configured, an RFC 3161 timestamp.
// Verification stays offline: [WithTrustedRoot] gives the verifier a sigstore
// trusted_root.json ([LoadTrustedRoot], never fetched), against which sigstore-go
// checks the certificate chain, the log entry's signed timestamp or inclusion
// proof, the timestamps, and that the certificate was valid when the log or the
// timestamp authority saw the signature; the policy's identities without roots of
// their own ([sign.TrustedIdentity]) are then matched on the certificate. A
// failure is a named denial (another root, an expired certificate with no proof
// of its signing time, a log entry for another artifact, another identity).
//
// An image index is verified per platform: its signatures are its own, and each
// platform image it lists is judged on the attestations attached to that image's
// digest together with the index's ([Verifier.Verify]); [Signer.Attest] attaches a
// predicate whose [sign.Predicate.Subject] names a platform image to that image,
// through the index's digest. So SBOMs and vulnerability reports, which are per
// platform, are attested and judged per platform, as BuildKit attaches them.
//
// A verifier reads registries within limits ([WithMaxLayers], [WithMaxPayloadSize],
// [WithConcurrency], [WithMaxPlatforms]) whose defaults suit a server verifying
// whatever registry a request names: what a hostile registry serves past them
// denies the image, it is never read in full.
//
// Signing, attesting and verifying report their steps to an [observe.Observer]
// ([WithObserver]).
//
// Private keys and passwords never appear in errors, logs or the String of any value.
package cosign
