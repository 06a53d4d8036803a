// Package cosign signs and attests images, and verifies them against a
// [sign.Policy], in cosign's formats and registry layout: a signature is pushed to
// the tag sha256-HEX.sig and attestations (DSSE envelopes of in-toto statements) to
// sha256-HEX.att, so the cosign CLI verifies what this package signs
// (cosign verify --key cosign.pub --insecure-ignore-tlog) and this package verifies
// what the CLI signs.
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
// Nothing is sent to a transparency log (Rekor), a timestamp authority or a
// certificate authority, and verification asks none: signing and verifying work
// offline. Without a log or timestamp, nothing proves when a signature was made, so
// a signature with a certificate verifies only while the certificate is valid (as
// with cosign verify --insecure-ignore-tlog). Uploading to Rekor and verifying
// inclusion proofs are not provided; a Fulcio certificate, valid for minutes, is
// therefore of use here only for a verification that follows the signing at once.
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
