// Package sign signs images by digest and attaches in-toto attestations to them
// (SBOM, vulnerability report, SLSA provenance), and verifies both against a policy.
//
// The package itself holds only the interfaces and the values that cross stages, so a
// deploy gate can depend on a [Verifier] without linking a signing implementation.
package sign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Signer signs an image, named by digest: a tag could move after signing.
type Signer interface {
	Sign(ctx context.Context, d name.Digest, opts ...SignOption) error
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
}

// SignOption sets a field of [SignOptions].
type SignOption func(*SignOptions)

// WithAnnotations adds annotations to the signed payload.
func WithAnnotations(a map[string]string) SignOption {
	return func(o *SignOptions) {
		if o.Annotations == nil {
			o.Annotations = map[string]string{}
		}
		for k, v := range a {
			o.Annotations[k] = v
		}
	}
}

// Verified is what a [Verifier] checked for one image.
type Verified struct {
	// Digest is the image that was verified.
	Digest name.Digest
	// Signers identifies the trusted keys (or identities) whose signatures verified.
	Signers []string
	// Attestations are the verified in-toto statements, by predicate type.
	Attestations []Attestation
}

// Attestation is one verified in-toto statement about the image.
type Attestation struct {
	PredicateType string
	Predicate     json.RawMessage
}

// ErrDenied is matched (errors.Is) by every [DeniedError].
var ErrDenied = errors.New("image denied by signature policy")

// DeniedError says why a policy denied an image: every reason, not just the first.
type DeniedError struct {
	Digest  name.Digest
	Reasons []string
}

// Error lists the reasons.
func (e *DeniedError) Error() string {
	return fmt.Sprintf("%s denied: %s", e.Digest, strings.Join(e.Reasons, "; "))
}

// Unwrap makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Unwrap() error { return ErrDenied }
