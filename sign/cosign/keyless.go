package cosign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	sgsign "github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"

	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/sign"
)

// TokenSource returns an OIDC ID token for Fulcio: the identity a keyless
// signature is made as. It is called once per signature, so a source that mints
// short-lived tokens (a CI provider's, say GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_URL)
// gives each a fresh one. The token is a secret: it is never logged nor put in
// errors.
type TokenSource func(ctx context.Context) (string, error)

// StaticToken returns a TokenSource that always returns tok.
func StaticToken(tok string) TokenSource {
	return func(context.Context) (string, error) { return tok, nil }
}

// Keyless says where a [KeylessSigner] gets its certificate, log entry and
// timestamps.
type Keyless struct {
	// Token returns the OIDC ID token to exchange for a certificate. Required.
	Token TokenSource
	// FulcioURL is the certificate authority's base URL (sigstore's public one is
	// https://fulcio.sigstore.dev). Required.
	FulcioURL string
	// RekorURL is the transparency log's base URL (https://rekor.sigstore.dev; Rekor's
	// v1 API). TSAURL is an RFC 3161 timestamp authority's full URL
	// (https://timestamp.sigstore.dev/api/v1/timestamp). At least one is required:
	// a Fulcio certificate is valid for minutes, and only a log entry or a timestamp
	// proves, later, that it signed while valid.
	RekorURL, TSAURL string
	// Transport, when set, carries the requests to Fulcio and the timestamp
	// authority (Rekor's client has its own).
	Transport http.RoundTripper
	// TrustedRoot, when set, is checked against each bundle right after it is made
	// (sigstore-go verifies it), so that a misconfigured URL fails at signing rather
	// than at every later verification.
	TrustedRoot *TrustedRoot
}

// KeylessSigner makes sigstore bundles signed keylessly: for each signature a new
// ephemeral ECDSA P-256 key, a Fulcio certificate binding it to the token's
// identity, an entry in the transparency log and, when configured, an RFC 3161
// timestamp, all through sigstore-go's clients. The private key never leaves
// memory and is dropped after the signature. It is safe for concurrent use.
type KeylessSigner struct {
	cfg Keyless
}

// NewKeylessSigner checks k and returns a signer. Every invalid field is named in
// one error wrapping [ErrInvalidOption].
func NewKeylessSigner(k Keyless) (*KeylessSigner, error) {
	var bad option.List
	if k.Token == nil {
		bad.Addf("Keyless.Token: nil")
	}
	checkURL := func(field, u string, required bool) {
		if u == "" {
			if required {
				bad.Addf("Keyless.%s: empty", field)
			}
			return
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			bad.Addf("Keyless.%s: %q is not an http(s) URL", field, safeText(u, 200))
		}
	}
	checkURL("FulcioURL", k.FulcioURL, true)
	checkURL("RekorURL", k.RekorURL, false)
	checkURL("TSAURL", k.TSAURL, false)
	if k.RekorURL == "" && k.TSAURL == "" {
		bad.Addf("Keyless: neither RekorURL nor TSAURL: nothing would prove when the signature was made")
	}
	if err := bad.Err("keyless signer"); err != nil {
		return nil, err
	}
	return &KeylessSigner{cfg: k}, nil
}

// ErrKeylessSigning is wrapped by the error of [KeylessSigner.Bundle] when the
// token source, Fulcio, Rekor or the timestamp authority fails, or the bundle made
// does not verify against the configured trusted root.
var ErrKeylessSigning = errors.New("keyless signing")

// Bundle signs content (sigstore-go's sign.PlainData for a message signature,
// sign.DSSEData for an envelope) keylessly and returns the sigstore bundle (media
// type application/vnd.dev.sigstore.bundle.v0.3+json) with the certificate, the
// log entry and the timestamps.
func (s *KeylessSigner) Bundle(ctx context.Context, content sgsign.Content) (*protobundle.Bundle, error) {
	tok, err := s.cfg.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: OIDC token: %w", ErrKeylessSigning, err)
	}
	if tok == "" {
		return nil, fmt.Errorf("%w: the token source returned an empty token", ErrKeylessSigning)
	}
	kp, err := sgsign.NewEphemeralKeypair(nil)
	if err != nil {
		return nil, fmt.Errorf("%w: ephemeral key: %w", ErrKeylessSigning, err)
	}
	opts := sgsign.BundleOptions{
		Context:                    ctx,
		CertificateProvider:        sgsign.NewFulcio(&sgsign.FulcioOptions{BaseURL: s.cfg.FulcioURL, Transport: s.cfg.Transport}),
		CertificateProviderOptions: &sgsign.CertificateProviderOptions{IDToken: tok},
	}
	if s.cfg.RekorURL != "" {
		opts.TransparencyLogs = []sgsign.Transparency{sgsign.NewRekor(&sgsign.RekorOptions{BaseURL: s.cfg.RekorURL})}
	}
	if s.cfg.TSAURL != "" {
		opts.TimestampAuthorities = []*sgsign.TimestampAuthority{
			sgsign.NewTimestampAuthority(&sgsign.TimestampAuthorityOptions{URL: s.cfg.TSAURL, Transport: s.cfg.Transport}),
		}
	}
	if s.cfg.TrustedRoot != nil {
		opts.TrustedRoot = s.cfg.TrustedRoot.Material()
	}
	pb, err := sgsign.Bundle(content, kp, opts)
	if err != nil {
		// The services' answers may quote what was sent; the token is never sent to
		// Rekor or the TSA, and Fulcio's errors do not echo it, but cut anything
		// long or binary all the same.
		return nil, fmt.Errorf("%w: %s", ErrKeylessSigning, redact(safeText(err.Error(), 400), tok))
	}
	return pb, nil
}

// redact removes secret from s.
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[token]")
}

// keylessCheck verifies b, a sigstore bundle signed with a certificate, against
// the trusted root tr (see [TrustedRoot] for what that checks) with artifact as
// what it must be about, then finds the first trusted identity its certificate
// names. prefix starts the messages and untrusted is the reason code of a bundle
// no trusted identity made. The problems are the verifier's own words: a
// certificate's names are quoted (sanitized, cut), never the bundle's bytes.
func keylessCheck(tr *TrustedRoot, b *bundle.Bundle, artifact verify.ArtifactPolicyOption, ids []trustedIdentity, prefix string, untrusted sign.ReasonCode) (*signer, *problem) {
	vc, err := b.VerificationContent()
	if err != nil || vc.Certificate() == nil {
		return nil, &problem{code: sign.ReasonMalformed, msg: prefix + "bundle carries no readable certificate"}
	}
	leaf := vc.Certificate()
	names := certNames(leaf)
	if len(ids) == 0 {
		return nil, &problem{code: untrusted, msg: fmt.Sprintf("%skeyless signature by %s; the policy trusts keys only", prefix, names)}
	}
	if tr == nil {
		return nil, &problem{code: untrusted, msg: fmt.Sprintf("%skeyless signature by %s, and the verifier has no sigstore trusted root to check it against (WithTrustedRoot)", prefix, names)}
	}
	res, err := tr.verifier.Verify(b, verify.NewPolicy(artifact, verify.WithoutIdentitiesUnsafe()))
	if err != nil {
		return nil, diagnose(tr, b, err, leaf, names, prefix, untrusted)
	}
	var signedAt time.Time
	for _, ts := range res.VerifiedTimestamps {
		if signedAt.IsZero() || ts.Timestamp.Before(signedAt) {
			signedAt = ts.Timestamp
		}
	}
	var mismatch []string
	for i := range ids {
		id := &ids[i]
		if len(id.id.RootsPEM) > 0 {
			// An identity with roots of its own: the certificate must also chain to
			// them, at the verified signing time.
			err = id.id.Verify(leaf, vc.Intermediates(), signedAt)
		} else {
			err = id.id.MatchCertificate(leaf)
		}
		if err == nil {
			return &signer{name: id.name, fingerprint: id.fingerprint}, nil
		}
		mismatch = append(mismatch, id.name)
	}
	return nil, &problem{code: sign.ReasonWrongIdentity, msg: fmt.Sprintf("%skeyless signature by %s, which is none of the trusted identities (%s)",
		prefix, names, safeText(strings.Join(mismatch, ", "), 400))}
}

// diagnose says why b failed sigstore-go's verification, by running its steps in
// its order (the certificate's issuer first): the transparency log, the signing
// time, the certificate's validity then, then the signature; verr is its error.
func diagnose(tr *TrustedRoot, b *bundle.Bundle, verr error, leaf *x509.Certificate, names, prefix string, untrusted sign.ReasonCode) *problem {
	v := tr.verifier
	now := time.Now()
	expiredNow := now.After(leaf.NotAfter)
	validity := fmt.Sprintf("valid from %s to %s", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	noTime := func(what string, err error) *problem {
		if expiredNow {
			return &problem{code: sign.ReasonExpiredCertificate, msg: fmt.Sprintf("%skeyless signature by %s: certificate %s has expired, and %s: %s",
				prefix, names, validity, what, sigstoreText(err))}
		}
		return &problem{code: untrusted, msg: fmt.Sprintf("%skeyless signature by %s: %s: %s", prefix, names, what, sigstoreText(err))}
	}
	// Issued by a certificate authority of the root at all (tried at the
	// certificate's own start)?
	issued := false
	for _, ca := range tr.root.FulcioCertificateAuthorities() {
		if _, err := ca.Verify(leaf, leaf.NotBefore.Add(time.Second)); err == nil {
			issued = true
			break
		}
	}
	if !issued {
		return &problem{code: untrusted, msg: fmt.Sprintf("%skeyless signature by %s: certificate (issuer %q) not issued by a certificate authority of the trusted root",
			prefix, names, safeText(leaf.Issuer.String(), 200))}
	}
	logTimes, err := v.VerifyTransparencyLogInclusion(b)
	if err != nil {
		return noTime("its transparency log entries do not verify against the trusted root or are not this signature's", err)
	}
	times, err := v.VerifyObserverTimestamps(b, logTimes)
	if err != nil {
		return noTime("no log entry or timestamp the trusted root verifies proves when it signed", err)
	}
	// Valid at each verified signing time?
	for _, ts := range times {
		ok := false
		for _, ca := range tr.root.FulcioCertificateAuthorities() {
			if _, err := ca.Verify(leaf, ts.Timestamp); err == nil {
				ok = true
				break
			}
		}
		if !ok {
			return &problem{code: sign.ReasonExpiredCertificate, msg: fmt.Sprintf("%skeyless signature by %s: certificate %s, signed at %s (by the %s), outside it",
				prefix, names, validity, ts.Timestamp.UTC().Format(time.RFC3339), timeSource(ts.Type))}
		}
	}
	// Everything but the signature over the artifact verified: a signature that
	// verifies without the artifact check (a DSSE envelope's) was made for another
	// artifact.
	if _, err := v.Verify(b, verify.NewPolicy(verify.WithoutArtifactUnsafe(), verify.WithoutIdentitiesUnsafe())); err == nil {
		return &problem{code: sign.ReasonWrongSubject, msg: fmt.Sprintf("%skeyless signature by %s is for another artifact", prefix, names)}
	}
	// The signature itself, or a signed certificate timestamp the root asks for.
	return &problem{code: untrusted, msg: fmt.Sprintf("%skeyless signature by %s does not verify: %s", prefix, names, sigstoreText(verr))}
}

// sigstoreText is sigstore-go's error message, sanitized and cut, without the
// empty tail it leaves when there is no further error to join.
func sigstoreText(err error) string {
	s := err.Error()
	s = strings.TrimSuffix(s, "; error: %!w(<nil>)")
	s = strings.TrimSuffix(s, "; error: ")
	return safeText(s, 300)
}

// timeSource names where a verified time came from.
func timeSource(typ string) string {
	switch typ {
	case "Tlog":
		return "transparency log"
	case "TimestampAuthority":
		return "timestamp authority"
	}
	return strings.ToLower(typ)
}

// certNames describes a certificate by its subject alternative names and OIDC
// issuer, sanitized and cut.
func certNames(c *x509.Certificate) string {
	s := strings.Join(sign.SubjectAlternativeNames(c), ", ")
	if s == "" {
		s = "(no subject alternative name)"
	}
	if iss, err := sign.OIDCIssuer(c); err == nil && iss != "" {
		s += " from " + iss
	}
	return safeText(s, 300)
}

// Key returns a signing key for [NewSigner] that signs keylessly: a new ephemeral
// ECDSA P-256 key (in memory only) and a Fulcio certificate binding it to the
// token's identity, obtained now. Every sigstore bundle the Signer makes with it
// then gets an entry in the transparency log and, when configured, an RFC 3161
// timestamp, before it is pushed, and is checked against [Keyless.TrustedRoot]
// when set. The certificate is valid for Fulcio's lifetime (10 minutes for
// sigstore's public instance): sign and attest an image with one key, and get a
// new one for the next run; a key whose certificate has expired is refused by the
// Signer. A Signer with a keyless key writes sigstore bundles only ([NewSigner]
// refuses [FormatLegacy]: the legacy layout has no place for the log entry and
// timestamps).
func (s *KeylessSigner) Key(ctx context.Context) (*PrivateKey, error) {
	tok, err := s.cfg.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: OIDC token: %w", ErrKeylessSigning, err)
	}
	if tok == "" {
		return nil, fmt.Errorf("%w: the token source returned an empty token", ErrKeylessSigning)
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("%w: ephemeral key: %w", ErrKeylessSigning, err)
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("%w: ephemeral key: %w", ErrKeylessSigning, err)
	}
	fulcio := sgsign.NewFulcio(&sgsign.FulcioOptions{BaseURL: s.cfg.FulcioURL, Transport: s.cfg.Transport})
	der, err := fulcio.GetCertificate(ctx, keypairOf{sv: sv, pub: &priv.PublicKey}, &sgsign.CertificateProviderOptions{IDToken: tok})
	if err != nil {
		return nil, fmt.Errorf("%w: Fulcio certificate: %s", ErrKeylessSigning, redact(safeText(err.Error(), 400), tok))
	}
	k, err := newPrivateKey(ctx, sv, "keyless key")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeylessSigning, err)
	}
	if k, err = k.WithCertificate(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil); err != nil {
		return nil, fmt.Errorf("%w: Fulcio's certificate: %w", ErrKeylessSigning, err)
	}
	k.finish = s.finishBundle
	return k, nil
}

// finishBundle adds to b, a bundle signed by a keyless key, the timestamp over its
// signature and its transparency log entry (in sigstore-go's order), then checks
// it against the trusted root when one is configured.
func (s *KeylessSigner) finishBundle(ctx context.Context, b *protobundle.Bundle) error {
	vm := b.GetVerificationMaterial()
	cert := vm.GetCertificate().GetRawBytes()
	if cert == nil {
		return fmt.Errorf("%w: the bundle carries no certificate", ErrKeylessSigning)
	}
	var sig []byte
	switch {
	case b.GetDsseEnvelope() != nil && len(b.GetDsseEnvelope().GetSignatures()) == 1:
		sig = b.GetDsseEnvelope().GetSignatures()[0].GetSig()
	case b.GetMessageSignature() != nil:
		sig = b.GetMessageSignature().GetSignature()
	default:
		return fmt.Errorf("%w: the bundle holds neither one DSSE signature nor a message signature", ErrKeylessSigning)
	}
	if s.cfg.TSAURL != "" {
		tsa := sgsign.NewTimestampAuthority(&sgsign.TimestampAuthorityOptions{URL: s.cfg.TSAURL, Transport: s.cfg.Transport})
		ts, err := tsa.GetTimestamp(ctx, sig)
		if err != nil {
			return fmt.Errorf("%w: timestamp: %s", ErrKeylessSigning, safeText(err.Error(), 400))
		}
		if vm.TimestampVerificationData == nil {
			vm.TimestampVerificationData = &protobundle.TimestampVerificationData{}
		}
		vm.TimestampVerificationData.Rfc3161Timestamps = append(vm.TimestampVerificationData.Rfc3161Timestamps,
			&protocommon.RFC3161SignedTimestamp{SignedTimestamp: ts})
	}
	if s.cfg.RekorURL != "" {
		rekor := sgsign.NewRekor(&sgsign.RekorOptions{BaseURL: s.cfg.RekorURL})
		if err := rekor.GetTransparencyLogEntry(ctx, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}), b); err != nil {
			return fmt.Errorf("%w: transparency log: %s", ErrKeylessSigning, safeText(err.Error(), 400))
		}
	}
	if s.cfg.TrustedRoot != nil {
		sb, err := bundle.NewBundle(b)
		if err == nil {
			_, err = s.cfg.TrustedRoot.verifier.Verify(sb, verify.NewPolicy(verify.WithoutArtifactUnsafe(), verify.WithoutIdentitiesUnsafe()))
		}
		if err != nil {
			return fmt.Errorf("%w: the bundle does not verify against the trusted root: %s", ErrKeylessSigning, sigstoreText(err))
		}
	}
	return nil
}

// keypairOf is a sigstore signer as sigstore-go's Keypair, for Fulcio's proof of
// possession (a signature over the token's subject).
type keypairOf struct {
	sv  signature.SignerVerifier
	pub *ecdsa.PublicKey
}

func (k keypairOf) GetHashAlgorithm() protocommon.HashAlgorithm {
	return protocommon.HashAlgorithm_SHA2_256
}
func (k keypairOf) GetSigningAlgorithm() protocommon.PublicKeyDetails {
	return protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256
}
func (k keypairOf) GetHint() []byte                { return nil }
func (k keypairOf) GetKeyAlgorithm() string        { return "ECDSA" }
func (k keypairOf) GetPublicKey() crypto.PublicKey { return k.pub }
func (k keypairOf) GetPublicKeyPem() (string, error) {
	b, err := cryptoutils.MarshalPublicKeyToPEM(k.pub)
	return string(b), err
}
func (k keypairOf) SignData(ctx context.Context, data []byte) ([]byte, []byte, error) {
	sig, err := k.sv.SignMessage(bytes.NewReader(data), sigopts.WithContext(ctx))
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(data)
	return sig, sum[:], nil
}
