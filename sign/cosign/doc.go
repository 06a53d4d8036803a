// Package cosign signs and attests images, and verifies them against a
// [sign.Policy], in cosign's formats and registry layout: a signature is pushed to
// the tag sha256-HEX.sig and attestations (DSSE envelopes of in-toto statements) to
// sha256-HEX.att, so the cosign CLI verifies what this package signs
// (cosign verify --key cosign.pub --insecure-ignore-tlog) and this package verifies
// what the CLI signs.
//
// Keys are cosign key pairs: a private key encrypted with a password in cosign's PEM
// format (the CLI's cosign.key) and a PEM public key (cosign.pub). Signing is offline:
// nothing is sent to a transparency log (Rekor) or certificate authority (Fulcio),
// and verification does not ask for one.
//
// Private keys and passwords never appear in errors, logs or the String of any value.
package cosign
