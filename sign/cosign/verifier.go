package cosign

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	cosignlib "github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/shipkit/shipkit/sign"
)

// Verifier checks an image's cosign signatures and attestations against a
// [sign.Policy]. It implements [sign.Verifier], keeps its verdicts in a [sign.Cache]
// (keyed by the image and the policy) and is safe for concurrent use.
//
// The cryptographic checks are cosign's own (cosign.VerifyImageSignature and
// cosign.VerifyBlobAttestation with their claim verifiers, without a transparency
// log), so a signature by a trusted key passes here exactly when cosign verify --key
// and cosign verify-attestation --key accept it. A signature with a certificate
// passes when cosign verify --certificate-chain ROOTS --certificate-identity …
// --certificate-oidc-issuer … --insecure-ignore-tlog --insecure-ignore-sct accepts
// it and, stricter than cosign, every certificate of its chain is valid now and the
// identity's regular expressions match whole values (see [sign.TrustedIdentity]).
// The policy on top (thresholds, required predicates, conditions) is this
// package's.
//
// Everything is read from the registry within limits ([WithMaxLayers],
// [WithMaxPayloadSize], [WithConcurrency], [WithMaxPlatforms]; the defaults suit
// an admission webhook that verifies whatever registry a pod names): each layer is
// read, judged and dropped in turn (only verified predicates are kept), and
// anything past a limit denies the image with a reason that says which limit.
// Reasons are the verifier's own words: no registry response or payload bytes are
// copied into them (those are logged at debug level, truncated).
//
// A verdict is cached (see [WithCache]): a pass for [sign.DefaultCacheTTL] (5
// minutes), a denial for [sign.DefaultDeniedTTL] (10 seconds, so that signatures
// pushed after a denial are seen soon). A certificate that expires while its
// passing verdict is cached is noticed when the verdict expires. A cached pass is
// reported as one in the observer's step message; a cached denial's error says it
// is a cached verdict and until when (sign.DeniedError.CachedAt). Registry
// authentication is kept per repository for the Verifier's life (one ping and
// token exchange per repository, refreshed when the registry asks), so make one
// Verifier per policy and keep it.
type Verifier struct {
	policy     sign.Policy
	policyKey  string
	keys       []trustedKey
	identities []trustedIdentity
	// bundleAuth is what sigstore bundles verify under (see bundleAuthorities).
	bundleAuth []bundleAuthority
	opts       options
	cache      *sign.Cache
	// puller keeps each repository's authentication and ping between reads.
	puller *remote.Puller
}

var _ sign.Verifier = (*Verifier)(nil)

type trustedKey struct {
	name, fingerprint string
	verifier          signature.Verifier
}

type trustedIdentity struct {
	name, fingerprint string
	id                sign.TrustedIdentity
}

// NewVerifier returns a Verifier for policy p.
func NewVerifier(p sign.Policy, opts ...Option) (*Verifier, error) {
	key, err := p.Key()
	if err != nil {
		return nil, fmt.Errorf("cosign verifier: %w", err)
	}
	v := &Verifier{policy: p, policyKey: key, opts: newOptions(opts)}
	if err := v.opts.limits.validate(); err != nil {
		return nil, fmt.Errorf("cosign verifier: %w", err)
	}
	if v.policyKey, err = v.opts.keylessPolicyKey(p, v.policyKey); err != nil {
		return nil, fmt.Errorf("cosign verifier: %w", err)
	}
	v.policy.RequiredPredicates = slices.Clone(p.RequiredPredicates)
	v.policy.Conditions = slices.Clone(p.Conditions)
	for _, k := range p.TrustedKeys {
		pub, err := cryptoutils.UnmarshalPEMToPublicKey(k.PEM)
		if err != nil {
			return nil, fmt.Errorf("cosign verifier: trusted key %s: %w", k.DisplayName(), err)
		}
		sv, err := signature.LoadDefaultVerifier(pub, *cosignlib.GetDefaultLoadOptions(nil)...)
		if err != nil {
			return nil, fmt.Errorf("cosign verifier: trusted key %s: %w", k.DisplayName(), err)
		}
		fp, _ := k.Fingerprint() // p.Key parsed it
		v.keys = append(v.keys, trustedKey{name: k.DisplayName(), fingerprint: "key " + fp, verifier: sv})
	}
	for _, id := range p.TrustedIdentities {
		fp, _ := id.Fingerprint() // p.Key validated it
		v.identities = append(v.identities, trustedIdentity{name: id.DisplayName(), fingerprint: "identity " + fp, id: id})
	}
	if v.bundleAuth, err = v.bundleAuthorities(); err != nil {
		return nil, fmt.Errorf("cosign verifier: %w", err)
	}
	if v.puller, err = v.opts.newPuller(); err != nil {
		return nil, fmt.Errorf("cosign verifier: %w", err)
	}
	switch {
	case v.opts.noCache:
	case v.opts.cache != nil:
		v.cache = v.opts.cache
	default:
		v.cache = sign.NewCache()
	}
	return v, nil
}

// Verify checks the image d against the policy. It returns what it verified, a
// *[sign.DeniedError] listing every reason when the policy denies the image, or
// another error when the registry could not be read.
//
// d may be an image or an image index. An index's signatures are its own (the
// policy's threshold applies to them; [sign.WithRecursive] signs the platform
// images too, which verify by their own digests). For an index, Verify also reads
// the attestations of each platform image it lists (not BuildKit's attestation
// manifests nor other artifacts), on that image's own digest, into
// [sign.Verified.Platforms], and the policy's required predicates and conditions
// are judged per platform, on its attestations together with the index's (see
// [sign.Policy.Judge]): a platform missing its SBOM denies the index, naming the
// platform. Attest a platform's predicates with [sign.Predicate.Subject] set to
// put them there.
func (v *Verifier) Verify(ctx context.Context, d name.Digest) (*sign.Verified, error) {
	if err := sign.CheckDigest(d); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	st := v.opts.start("verify " + d.String())
	ran := false
	out, err := v.cache.Do(ctx, d.String()+" "+v.policyKey, func(ctx context.Context) (*sign.Verified, error) {
		ran = true
		return v.verify(ctx, d)
	})
	if err != nil {
		return nil, st.Fail(err)
	}
	msg := fmt.Sprintf("verified: signed by %s, %d attestations", strings.Join(out.Signers, ", "), len(out.Attestations))
	if !ran {
		msg += " (verdict from the cache, or shared with a concurrent verification)"
	}
	st.Finish(msg)
	return out, nil
}
