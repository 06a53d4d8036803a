package sign

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// TrustedIdentity is a signer a policy knows by its certificate, not by its key: a
// signature counts for it when the certificate it carries chains to one of RootsPEM
// and names the identity (subject and OIDC issuer). This is how keyless (Fulcio)
// signatures and signatures made with a certificate from one's own PKI
// (cosign sign --certificate --certificate-chain) are trusted.
//
// Without a transparency log or a timestamp authority nothing proves when a
// signature was made, so the certificate and its chain must be valid when the
// signature is verified, as cosign verify --insecure-ignore-tlog requires for the
// leaf: a signature whose certificate has expired is refused (see [ErrCertificateExpired]).
//
// An identity without RootsPEM is a keyless identity under a sigstore trusted root:
// it is met only by a sigstore bundle whose certificate, transparency log entry and
// timestamps verify against the trusted root the verifier is given (in package
// cosign, WithTrustedRoot), which also proves the certificate was valid when it
// signed. Its Verify always fails with [ErrCertificateNotTrusted].
type TrustedIdentity struct {
	// Name identifies the identity in [Verified.Signers] and in reasons; empty means
	// the subject and issuer ("SUBJECT from ISSUER").
	Name string
	// RootsPEM holds the root certificates (PEM, one or more) the signing certificate
	// must chain to. Empty means the roots of the verifier's sigstore trusted root
	// (see the type's doc).
	RootsPEM []byte
	// IntermediatesPEM optionally holds intermediate CA certificates (PEM). Without
	// them the intermediates come from the chain the signature carries; they are
	// never trusted on their own, only as links to a root.
	IntermediatesPEM []byte
	// Subject is the certificate identity, compared exactly with each of the
	// certificate's subject alternative names (email, URI, DNS name, IP address, or
	// Fulcio's username). SubjectRegexp is a regular expression (RE2) that must match
	// a whole SAN: it is anchored, unlike cosign's --certificate-identity-regexp, so
	// "https://github.com/org/.*" cannot be met by "https://evil.example/?https://github.com/org/".
	// Exactly one of the two is required.
	Subject, SubjectRegexp string
	// Issuer is the OIDC issuer the certificate names in Fulcio's extension
	// (1.3.6.1.4.1.57264.1.8, or the older 1.3.6.1.4.1.57264.1.1), compared exactly;
	// IssuerRegexp is an anchored regular expression for it. Exactly one of the two
	// is required; IssuerRegexp ".*" accepts a certificate that names no issuer.
	Issuer, IssuerRegexp string
}

// The errors of [TrustedIdentity.Verify], matched with errors.Is.
var (
	// ErrCertificateNotTrusted: the certificate does not chain to the identity's
	// roots (issued by another CA), or is not for code signing.
	ErrCertificateNotTrusted = errors.New("certificate not issued under a trusted root")
	// ErrIdentityMismatch: the certificate chains to a trusted root but names another
	// subject or issuer.
	ErrIdentityMismatch = errors.New("certificate identity not trusted")
	// ErrCertificateExpired: the certificate, or a certificate of its chain, is not
	// valid at the time of verification.
	ErrCertificateExpired = errors.New("certificate not valid now")
)

// Fulcio's certificate extensions naming the OIDC issuer.
var (
	oidIssuerV1   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1} // raw string
	oidIssuerV2   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8} // DER UTF8String
	oidOtherName  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 7} // Fulcio username SAN
	oidSubjectAlt = asn1.ObjectIdentifier{2, 5, 29, 17}
)

// Validate checks that the identity has roots that parse, a subject, an issuer, and
// regular expressions that compile.
func (id TrustedIdentity) Validate() error {
	if _, err := ParseCertificates(id.RootsPEM); err != nil {
		return fmt.Errorf("trusted identity %s: roots: %w", id.DisplayName(), err)
	}
	if _, err := ParseCertificates(id.IntermediatesPEM); err != nil {
		return fmt.Errorf("trusted identity %s: intermediates: %w", id.DisplayName(), err)
	}
	if (id.Subject == "") == (id.SubjectRegexp == "") {
		return fmt.Errorf("trusted identity %s: set exactly one of Subject and SubjectRegexp", id.DisplayName())
	}
	if (id.Issuer == "") == (id.IssuerRegexp == "") {
		return fmt.Errorf("trusted identity %s: set exactly one of Issuer and IssuerRegexp", id.DisplayName())
	}
	for _, re := range []string{id.SubjectRegexp, id.IssuerRegexp} {
		if _, err := compileAnchored(re); err != nil {
			return fmt.Errorf("trusted identity %s: %w", id.DisplayName(), err)
		}
	}
	return nil
}

// DisplayName returns Name, or "SUBJECT from ISSUER" when Name is empty.
func (id TrustedIdentity) DisplayName() string {
	if id.Name != "" {
		return id.Name
	}
	return firstNonEmpty(id.Subject, id.SubjectRegexp) + " from " + firstNonEmpty(id.Issuer, id.IssuerRegexp)
}

// Fingerprint returns a hash of what the identity trusts (roots, intermediates,
// subject and issuer), hex encoded: two identities with equal fingerprints accept
// the same certificates.
func (id TrustedIdentity) Fingerprint() (string, error) {
	if err := id.Validate(); err != nil {
		return "", err
	}
	h := sha256.New()
	for _, pemBytes := range [][]byte{id.RootsPEM, id.IntermediatesPEM} {
		certs, _ := ParseCertificates(pemBytes) // Validate parsed them
		raws := make([]string, len(certs))
		for i, c := range certs {
			raws[i] = hex.EncodeToString(c.Raw)
		}
		slices.Sort(raws)
		fmt.Fprintf(h, "%q\n", raws)
	}
	fmt.Fprintf(h, "%q %q %q %q", id.Subject, id.SubjectRegexp, id.Issuer, id.IssuerRegexp)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Verify checks that leaf is a code-signing certificate issued under one of the
// identity's roots (through intermediates, trusted only as links, from the
// identity and from chain, the certificates a signature carries), that it names
// the identity, and that it and its chain are valid at now. The error wraps
// [ErrCertificateNotTrusted], [ErrIdentityMismatch] or [ErrCertificateExpired], in
// that order of checking, and says what the certificate names.
func (id TrustedIdentity) Verify(leaf *x509.Certificate, chain []*x509.Certificate, now time.Time) error {
	if err := id.Validate(); err != nil {
		return err
	}
	roots, _ := ParseCertificates(id.RootsPEM)
	if len(roots) == 0 {
		return fmt.Errorf("%w: identity %s has no roots of its own: it is trusted only in a sigstore bundle verified against a trusted root", ErrCertificateNotTrusted, id.DisplayName())
	}
	inter, _ := ParseCertificates(id.IntermediatesPEM)
	opts := x509.VerifyOptions{
		Roots:         x509.NewCertPool(),
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	for _, c := range roots {
		opts.Roots.AddCert(c)
	}
	for _, c := range slices.Concat(inter, chain) {
		opts.Intermediates.AddCert(c)
	}
	// Fulcio's certificates for usernames carry only an otherName SAN, which Go does
	// not understand and so leaves as an unhandled critical extension.
	leaf = withoutSANCriticality(leaf)

	// Valid now, through a trusted chain: the common case, one chain building.
	opts.CurrentTime = now
	_, errNow := leaf.Verify(opts)
	if errNow != nil {
		// Trust first, at a time the leaf was valid, so that an expired certificate
		// from another CA is reported as untrusted, not as expired.
		opts.CurrentTime = leaf.NotBefore
		if _, err := leaf.Verify(opts); err != nil {
			return fmt.Errorf("%w: certificate %s issued by %q: %w", ErrCertificateNotTrusted, describe(leaf), leaf.Issuer.String(), err)
		}
	}
	if err := id.MatchCertificate(leaf); err != nil {
		return err
	}
	if errNow != nil {
		return fmt.Errorf("%w: certificate %s is valid from %s to %s, it is now %s (without a transparency log or timestamp nothing proves it signed while valid): %w",
			ErrCertificateExpired, describe(leaf), leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339),
			now.UTC().Format(time.RFC3339), errNow)
	}
	return nil
}

// MatchCertificate checks only that leaf names the identity: one of its subject
// alternative names is Subject (or matches the anchored SubjectRegexp) and its OIDC
// issuer is Issuer (or matches IssuerRegexp). It does not check who issued leaf nor
// when: [TrustedIdentity.Verify] does, or a sigstore verification against a trusted
// root. The error wraps [ErrIdentityMismatch] and says what the certificate names.
func (id TrustedIdentity) MatchCertificate(leaf *x509.Certificate) error {
	if err := id.Validate(); err != nil {
		return err
	}
	sans := SubjectAlternativeNames(leaf)
	if !id.matchSubject(sans) {
		return fmt.Errorf("%w: certificate names %s, want %s", ErrIdentityMismatch, quoteList(sans), firstNonEmpty(id.Subject, id.SubjectRegexp))
	}
	issuer, err := OIDCIssuer(leaf)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIdentityMismatch, err)
	}
	if !id.matchIssuer(issuer) {
		return fmt.Errorf("%w: certificate names issuer %q, want %s", ErrIdentityMismatch, issuer, firstNonEmpty(id.Issuer, id.IssuerRegexp))
	}
	return nil
}

func (id TrustedIdentity) matchSubject(sans []string) bool {
	re, _ := compileAnchored(id.SubjectRegexp)
	for _, s := range sans {
		if (re != nil && re.MatchString(s)) || (re == nil && s == id.Subject) {
			return true
		}
	}
	return false
}

func (id TrustedIdentity) matchIssuer(issuer string) bool {
	if id.IssuerRegexp != "" {
		re, _ := compileAnchored(id.IssuerRegexp)
		return re.MatchString(issuer)
	}
	return issuer == id.Issuer
}

// compileAnchored compiles re so that it must match a whole string; "" gives nil.
func compileAnchored(re string) (*regexp.Regexp, error) {
	if re == "" {
		return nil, nil
	}
	r, err := regexp.Compile(`^(?:` + re + `)$`)
	if err != nil {
		return nil, fmt.Errorf("regular expression %q: %w", re, err)
	}
	return r, nil
}

// SubjectAlternativeNames returns the certificate's subject alternative names as
// strings: DNS names, email addresses, IP addresses, URIs and Fulcio's username
// (an otherName SAN).
func SubjectAlternativeNames(c *x509.Certificate) []string {
	var sans []string
	sans = append(sans, c.DNSNames...)
	sans = append(sans, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		sans = append(sans, ip.String())
	}
	for _, u := range c.URIs {
		sans = append(sans, u.String())
	}
	if u := otherNameSAN(c); u != "" {
		sans = append(sans, u)
	}
	return sans
}

// OIDCIssuer returns the OIDC issuer a Fulcio certificate names: extension
// 1.3.6.1.4.1.57264.1.8 (a DER UTF8String) or the older 1.3.6.1.4.1.57264.1.1 (raw
// text), "" when it names none. A certificate whose two extensions disagree is an
// error.
func OIDCIssuer(c *x509.Certificate) (string, error) {
	var v1, v2 string
	var has1, has2 bool
	for _, e := range c.Extensions {
		switch {
		case e.Id.Equal(oidIssuerV1):
			v1, has1 = string(e.Value), true
		case e.Id.Equal(oidIssuerV2):
			if rest, err := asn1.UnmarshalWithParams(e.Value, &v2, "utf8"); err != nil || len(rest) > 0 {
				return "", fmt.Errorf("certificate's OIDC issuer extension %s is not a UTF8String", oidIssuerV2)
			}
			has2 = true
		}
	}
	if has1 && has2 && v1 != v2 {
		return "", fmt.Errorf("certificate names two OIDC issuers, %q and %q", v2, v1)
	}
	if has2 {
		return v2, nil
	}
	return v1, nil
}

// otherNameSAN returns Fulcio's username SAN (otherName of type
// 1.3.6.1.4.1.57264.1.7, a UTF8String), "" when there is none.
func otherNameSAN(c *x509.Certificate) string {
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidSubjectAlt) {
			continue
		}
		var names []asn1.RawValue
		if rest, err := asn1.Unmarshal(e.Value, &names); err != nil || len(rest) > 0 {
			return ""
		}
		for _, n := range names {
			if n.Class != asn1.ClassContextSpecific || n.Tag != 0 { // otherName [0]
				continue
			}
			var other struct {
				ID    asn1.ObjectIdentifier
				Value string `asn1:"utf8,explicit,tag:0"`
			}
			if _, err := asn1.UnmarshalWithParams(n.FullBytes, &other, "tag:0"); err == nil && other.ID.Equal(oidOtherName) {
				return other.Value
			}
		}
	}
	return ""
}

// withoutSANCriticality returns c, or a copy of it without the SAN extension among
// its unhandled critical extensions (the SANs are checked here, by the identity).
func withoutSANCriticality(c *x509.Certificate) *x509.Certificate {
	i := slices.IndexFunc(c.UnhandledCriticalExtensions, func(o asn1.ObjectIdentifier) bool { return o.Equal(oidSubjectAlt) })
	if i < 0 {
		return c
	}
	cp := *c
	cp.UnhandledCriticalExtensions = slices.Delete(slices.Clone(c.UnhandledCriticalExtensions), i, i+1)
	return &cp
}

// ParseCertificates parses a PEM bundle of certificates (a chain file, a roots
// file). Data that is not a PEM CERTIFICATE block is an error.
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			return out, nil
		}
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("data that is not a PEM block")
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block of type %q, want CERTIFICATE", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
}

func describe(c *x509.Certificate) string {
	if sans := SubjectAlternativeNames(c); len(sans) > 0 {
		return "for " + quoteList(sans)
	}
	return fmt.Sprintf("%q", c.Subject.String())
}

func quoteList(s []string) string {
	if len(s) == 0 {
		return "no subject alternative name"
	}
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
