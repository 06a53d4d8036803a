// Package sign signs images by digest and attaches in-toto attestations to them
// (SBOM, vulnerability report, SLSA provenance), and verifies both against a policy.
//
// The package itself holds only the interfaces and the values that cross stages: the
// predicates a pipeline attests ([SPDX], [CycloneDX], [VulnPredicate],
// [Provenance.Predicate]), the [Policy] a gate verifies against (trusted keys, and
// [TrustedIdentity] for signatures made with a certificate), the [Cache] of
// verdicts and the [DeniedError] that lists why an image was refused. It links no
// signing implementation, so a deploy gate can depend on a [Verifier] alone; the
// cosign-compatible implementation is in package sign/cosign.
//
// It is also the one owner of the judgement of attestations, which the cosign
// verifier and the deploy gate both delegate to: [Policy.Judge] (required predicate
// types and conditions, per platform of an image index), [VulnRule] (the
// vulnerability threshold, the newest report's age, unreadable reports denied), the
// one encoder and decoder of cosign's vulnerability predicate ([VulnPredicate],
// [DecodeVulnPredicate]) and the one vocabulary of denials ([ReasonCode], [Reason],
// [DeniedError], [ErrDenied]).
package sign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Signer signs an image, named by digest: a tag could move after signing.
type Signer interface {
	Sign(ctx context.Context, d name.Digest, opts ...SignOption) error
}

// Attester signs an in-toto statement that says p about the image d and attaches it
// to the image.
type Attester interface {
	Attest(ctx context.Context, d name.Digest, p Predicate, opts ...AttestOption) error
}

// Verifier checks the signatures and attestations of an image against its policy.
// It returns what it verified, or an error; a policy that denies the image returns
// a *[DeniedError] listing every reason.
type Verifier interface {
	Verify(ctx context.Context, d name.Digest) (*Verified, error)
}

// SignOptions are the settings of one signature.
type SignOptions struct {
	// Annotations are signed together with the digest.
	Annotations map[string]string
	// Recursive also signs every manifest an image index lists (each platform's
	// image), as cosign sign --recursive does.
	Recursive bool
}

// SignOption sets a field of [SignOptions].
type SignOption func(*SignOptions)

// WithAnnotations adds annotations to the signed payload.
func WithAnnotations(a map[string]string) SignOption {
	return func(o *SignOptions) {
		if o.Annotations == nil {
			o.Annotations = map[string]string{}
		}
		maps.Copy(o.Annotations, a)
	}
}

// WithRecursive signs an image index and each image it lists.
func WithRecursive() SignOption { return func(o *SignOptions) { o.Recursive = true } }

// AttestOptions are the settings of one attestation.
type AttestOptions struct {
	// Replace removes the image's earlier attestations of the same predicate type
	// (cosign attest --replace); by default a new attestation is added beside them.
	Replace bool
}

// AttestOption sets a field of [AttestOptions].
type AttestOption func(*AttestOptions)

// WithReplace replaces earlier attestations of the same predicate type.
func WithReplace() AttestOption { return func(o *AttestOptions) { o.Replace = true } }

// Verified is what a [Verifier] checked for one image.
type Verified struct {
	// Digest is the image that was verified.
	Digest name.Digest
	// Signers names the trusted signers (keys and identities) whose signatures of the
	// image verified, sorted.
	Signers []string
	// Attestations are the verified in-toto statements about the image, signed by a
	// trusted signer, sorted by predicate type.
	Attestations []Attestation
	// Platforms are, when Digest is an image index, the platform images it lists,
	// each with the attestations verified on that image's own digest. An index is
	// judged per platform: each platform on its own attestations and the index's
	// (see [Policy.Judge]). Empty for an image, or when the verifier does not read
	// the platforms' attestations.
	Platforms []PlatformVerified
}

// PlatformVerified is one platform image of a verified index.
type PlatformVerified struct {
	// Digest is the platform image, in the index's repository.
	Digest name.Digest
	// Platform is the image's platform as the index lists it, when it does.
	Platform *v1.Platform
	// Attestations are the verified in-toto statements about this image (attested to
	// its own digest), signed by a trusted signer, sorted by predicate type.
	Attestations []Attestation
}

// Attestation is one verified in-toto statement about the image.
type Attestation struct {
	// PredicateType is the statement's predicate type URI.
	PredicateType string
	// Predicate is the statement's predicate, as signed.
	Predicate json.RawMessage
	// Signer names the trusted key or identity that signed the statement.
	Signer string
}

// ParseDigest parses a reference that must name an image by digest. A tag is
// refused: what a tag points to can change after it was checked, so resolve it to a
// digest first (for example with go-containerregistry's remote.Head) and sign or
// verify that digest.
func ParseDigest(ref string, opts ...name.Option) (name.Digest, error) {
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	d, ok := r.(name.Digest)
	if !ok {
		return name.Digest{}, fmt.Errorf("image reference %q is a tag, not a digest: resolve the tag to a digest first, then sign or verify the digest: %w", ref, ErrNotDigest)
	}
	return d, nil
}

// ErrNotDigest is matched (errors.Is) by the error for an image named by tag where a
// digest is required.
var ErrNotDigest = errors.New("image not named by digest")

// CheckDigest returns an error wrapping [ErrNotDigest] when d holds no digest, as the
// zero name.Digest does.
func CheckDigest(d name.Digest) error {
	if d.DigestStr() == "" {
		return fmt.Errorf("image reference %q has no digest: resolve it to a digest first: %w", d.String(), ErrNotDigest)
	}
	return nil
}

// ErrDenied is matched (errors.Is) by every denial: a [DeniedError] of a verifier,
// and the denial of a deploy gate (package deploy's Decision.Err) alike.
var ErrDenied = errors.New("denied by policy")

// ReasonCode classifies a [Reason] so that callers can branch on it. It is the one
// vocabulary of denials: the signature policy's codes below, the vulnerability
// judgement's ([VulnRule]) and the deploy gate's own (package deploy) are all of
// this type, each defined once.
type ReasonCode string

// The reasons a policy denies an image.
const (
	// ReasonUnsigned: the image has no signature at all.
	ReasonUnsigned ReasonCode = "unsigned"
	// ReasonUntrustedSignature: a signature that no trusted key verifies (signed by
	// another key, or altered after signing), or whose certificate was not issued
	// under a trusted identity's roots.
	ReasonUntrustedSignature ReasonCode = "untrusted-signature"
	// ReasonWrongIdentity: a signature or attestation whose certificate was issued
	// under trusted roots to a subject or OIDC issuer that no trusted identity names.
	ReasonWrongIdentity ReasonCode = "wrong-identity"
	// ReasonExpiredCertificate: a signature or attestation whose certificate (or a
	// certificate of its chain) is not valid at the time of verification.
	ReasonExpiredCertificate ReasonCode = "expired-certificate"
	// ReasonWrongSubject: a signature or attestation, valid under a trusted signer, that
	// is about another image (for example copied from another digest).
	ReasonWrongSubject ReasonCode = "wrong-subject"
	// ReasonMalformed: a signature or attestation that cannot be read (garbage or
	// truncated payload, bad encoding).
	ReasonMalformed ReasonCode = "malformed"
	// ReasonThreshold: fewer distinct trusted signers signed the image than the
	// policy requires.
	ReasonThreshold ReasonCode = "threshold"
	// ReasonMissingAttestation: no trusted attestation of a required predicate type.
	ReasonMissingAttestation ReasonCode = "missing-attestation"
	// ReasonUntrustedAttestation: an attestation that no trusted key verifies (signed
	// by another key, or its predicate altered after signing), or whose certificate
	// was not issued under a trusted identity's roots.
	ReasonUntrustedAttestation ReasonCode = "untrusted-attestation"
	// ReasonCondition: a trusted attestation's predicate fails a policy condition.
	ReasonCondition ReasonCode = "condition"
)

// The reasons of the vulnerability judgement ([VulnRule]).
const (
	// ReasonNoReport: a severity limit is set but the image has no trusted
	// vulnerability report.
	ReasonNoReport ReasonCode = "no-vulnerability-report"
	// ReasonUnreadableReport: the newest trusted vulnerability report, or one that
	// may be the newest, cannot be read with certainty (unknown format, null or
	// empty, required fields missing, no scan time). It is never read as clean.
	ReasonUnreadableReport ReasonCode = "unreadable-report"
	// ReasonStaleReport: the newest trusted vulnerability report is older than the
	// maximum report age, or dated in the future.
	ReasonStaleReport ReasonCode = "stale-report"
	// ReasonVulnerable: the newest trusted vulnerability report has findings at or
	// above the severity limit.
	ReasonVulnerable ReasonCode = "vulnerable"
)

// Reason is one reason a policy denied an image.
type Reason struct {
	// Code classifies the reason.
	Code ReasonCode
	// Message says what was wrong, for people. A reason about one platform of an
	// index starts with the platform ("linux/arm64: ").
	Message string
}

// String returns the message.
func (r Reason) String() string { return r.Message }

// DeniedError says why a policy denied an image: every reason, not just the first.
type DeniedError struct {
	// Digest is the image that was denied.
	Digest name.Digest
	// Reasons lists every reason, at least one.
	Reasons []Reason
	// CachedAt is set when the denial is one a [Cache] kept (an earlier
	// verification's verdict, returned again without verifying): when that verdict
	// was reached. Signatures pushed since are not seen before CachedUntil. Zero for
	// a verdict just reached.
	CachedAt time.Time
	// CachedUntil is when the Cache forgets the denial: CachedAt plus its denied
	// TTL ([DefaultDeniedTTL], 10 seconds, by default).
	CachedUntil time.Time
}

// Error names the image and lists the reasons, one a line when there are several.
// A denial from a [Cache] says so, and until when it is kept.
func (e *DeniedError) Error() string {
	msgs := make([]string, len(e.Reasons))
	for i, r := range e.Reasons {
		msgs[i] = r.Message
	}
	head := ErrDenied.Error()
	if d := e.Digest.String(); d != "" {
		head = d + " " + head
	}
	if !e.CachedAt.IsZero() {
		head += fmt.Sprintf(" (cached verdict of %s, kept until %s)",
			e.CachedAt.UTC().Format(time.RFC3339), e.CachedUntil.UTC().Format(time.RFC3339))
	}
	return ListReasons(head, msgs)
}

// ListReasons formats a denial: "head: reason" for one reason, else "head: N
// reasons:" and each reason on its own indented line, so that twenty reasons stay
// readable. The deploy gate's denial error uses it too.
func ListReasons(head string, reasons []string) string {
	switch len(reasons) {
	case 0:
		return head
	case 1:
		return head + ": " + reasons[0]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d reasons:", head, len(reasons))
	for _, r := range reasons {
		b.WriteString("\n  ")
		b.WriteString(r)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Unwrap() error { return ErrDenied }

// Has reports whether one of the reasons has the code c.
func (e *DeniedError) Has(c ReasonCode) bool {
	for _, r := range e.Reasons {
		if r.Code == c {
			return true
		}
	}
	return false
}
