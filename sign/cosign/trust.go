package cosign

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	cosignlib "github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/shipkit/shipkit/sign"
)

// signer is the trusted key or identity a signature or attestation verified under.
type signer struct{ name, fingerprint string }

// trustCheck is how one kind of layer (signature or attestation) is verified and
// described.
type trustCheck struct {
	// verify is cosign's check of the layer (cosign.VerifyImageSignature or
	// cosign.VerifyBlobAttestation) and claims its claim verifier.
	verify func(context.Context, oci.Signature, v1.Hash, *cosignlib.CheckOpts) (bool, error)
	claims func(oci.Signature, v1.Hash, map[string]any) error
	// precheck, when set, tells whether the layer's signature verifies with a key
	// at all, cheaply; cosign's check runs only when it does (see
	// [dsseEnvelope.signedBy]).
	precheck func(signature.Verifier) bool
	// untrusted is the reason code of a layer no trusted signer made; prefix starts
	// the layer's messages ("" for a signature, which the caller numbers;
	// "attestation of TYPE: ").
	untrusted sign.ReasonCode
	prefix    string
	// wrongSubject and notTrusted are the messages of a layer made by a trusted
	// key for another image, and of one no trusted key made.
	wrongSubject func(signer string) string
	notTrusted   string
	// memo keeps the certificate checks of one verification.
	memo *certMemo
}

// certMemo keeps the verdicts of [sign.TrustedIdentity.Verify] by identity and
// certificate chain, so that an image's signature and attestations, made with one
// certificate, have it checked once. It is safe for concurrent use (two layers
// judged at once may both check a chain the memo does not hold yet).
type certMemo struct {
	mu sync.Mutex
	m  map[string]error
}

func (m *certMemo) verify(id *trustedIdentity, leaf *x509.Certificate, chain []*x509.Certificate, now time.Time) error {
	h := sha256.New()
	h.Write([]byte(id.fingerprint))
	for _, c := range append([]*x509.Certificate{leaf}, chain...) {
		sum := sha256.Sum256(c.Raw)
		h.Write(sum[:])
	}
	key := string(h.Sum(nil))
	m.mu.Lock()
	err, ok := m.m[key]
	m.mu.Unlock()
	if ok {
		return err
	}
	err = id.id.Verify(leaf, chain, now)
	m.mu.Lock()
	if m.m == nil {
		m.m = map[string]error{}
	}
	m.m[key] = err
	m.mu.Unlock()
	return err
}

// trust finds the trusted signer of sig: a trusted key for a layer without a
// certificate, a trusted identity for one with.
func (v *Verifier) trust(ctx context.Context, sig oci.Signature, h v1.Hash, c trustCheck) (*signer, *problem) {
	cert, err := sig.Cert()
	if err != nil {
		return nil, &problem{code: sign.ReasonMalformed, msg: c.prefix + "carries a certificate that cannot be read"}
	}
	if cert != nil {
		return v.trustIdentity(ctx, sig, cert, h, c)
	}
	if len(v.keys) == 0 {
		return nil, &problem{code: c.untrusted, msg: c.prefix + "made with a key and no certificate; the policy trusts certificate identities only"}
	}
	for i := range v.keys {
		k := &v.keys[i]
		ok, signed := v.cosignCheck(ctx, sig, h, c, &cosignlib.CheckOpts{SigVerifier: k.verifier})
		if ok {
			return &signer{name: k.name, fingerprint: k.fingerprint}, nil
		}
		if signed {
			return nil, &problem{code: sign.ReasonWrongSubject, msg: c.wrongSubject("key " + k.name)}
		}
	}
	return nil, &problem{code: c.untrusted, msg: c.notTrusted}
}

// cosignCheck runs cosign's verification of sig without a transparency log. It
// reports whether sig verified, and whether its signature did (cosign runs the
// claim check, which compares the signed image digest with h, only after it).
func (v *Verifier) cosignCheck(ctx context.Context, sig oci.Signature, h v1.Hash, c trustCheck, co *cosignlib.CheckOpts) (ok, signed bool) {
	if c.precheck != nil && !c.precheck(co.SigVerifier) {
		return false, false
	}
	co.IgnoreTlog = true
	co.ClaimVerifier = func(sig oci.Signature, h v1.Hash, ann map[string]any) error {
		signed = true
		return c.claims(sig, h, ann)
	}
	_, err := c.verify(ctx, sig, h, co)
	return err == nil, signed
}

// trustIdentity checks a layer that carries a certificate against every trusted
// identity: the certificate (chain to the identity's roots, code signing, identity,
// validity now: see [sign.TrustedIdentity.Verify]), then cosign's own verification
// of the signature with the certificate's key and of its claims.
func (v *Verifier) trustIdentity(ctx context.Context, sig oci.Signature, cert *x509.Certificate, h v1.Hash, c trustCheck) (*signer, *problem) {
	if len(v.identities) == 0 {
		return nil, &problem{code: c.untrusted, msg: fmt.Sprintf("%smade with a certificate for %s; the policy trusts keys only",
			c.prefix, safeText(strings.Join(sign.SubjectAlternativeNames(cert), ", "), 200))}
	}
	chain, err := sig.Chain()
	if err != nil {
		return nil, &problem{code: sign.ReasonMalformed, msg: c.prefix + "carries a certificate chain that cannot be read"}
	}
	certVerifier, err := signature.LoadVerifier(cert.PublicKey, crypto.SHA256)
	if err != nil {
		return nil, &problem{code: sign.ReasonMalformed, msg: c.prefix + "certificate's key cannot verify signatures: " + safeText(err.Error(), 200)}
	}
	now := time.Now()
	var best *problem
	rank := map[sign.ReasonCode]int{c.untrusted: 1, sign.ReasonWrongIdentity: 2, sign.ReasonExpiredCertificate: 3, sign.ReasonWrongSubject: 4}
	consider := func(p *problem) {
		if best == nil || rank[p.code] > rank[best.code] {
			best = p
		}
	}
	for i := range v.identities {
		id := &v.identities[i]
		if err := c.memo.verify(id, cert, chain, now); err != nil {
			code := c.untrusted
			switch {
			case errors.Is(err, sign.ErrIdentityMismatch):
				code = sign.ReasonWrongIdentity
			case errors.Is(err, sign.ErrCertificateExpired):
				code = sign.ReasonExpiredCertificate
			}
			consider(&problem{code: code, msg: fmt.Sprintf("%snot by trusted identity %s: %s", c.prefix, id.name, safeText(err.Error(), 400))})
			continue
		}
		// The certificate is trusted: cosign checks the signature with its key, the
		// claims, and (again) that the certificate is valid now.
		co := &cosignlib.CheckOpts{SigVerifier: certVerifier}
		ok, signed := v.cosignCheck(ctx, sig, h, c, co)
		switch {
		case ok:
			return &signer{name: id.name, fingerprint: id.fingerprint}, nil
		case signed:
			consider(&problem{code: sign.ReasonWrongSubject, msg: c.wrongSubject("identity " + id.name)})
		default:
			consider(&problem{code: c.untrusted, msg: fmt.Sprintf(
				"%scertificate of trusted identity %s, but the signature does not verify with its key (altered after signing)", c.prefix, id.name)})
		}
	}
	return nil, best
}
