package cosign

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	cosignlib "github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/cosign/v2/pkg/types"
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
// A verdict is cached (see [WithCache]): a certificate that expires while its
// passing verdict is cached is noticed when the verdict expires. Registry
// authentication is kept per repository for the Verifier's life (one ping and
// token exchange per repository, refreshed when the registry asks), so make one
// Verifier per policy and keep it.
type Verifier struct {
	policy     sign.Policy
	policyKey  string
	keys       []trustedKey
	identities []trustedIdentity
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
// another error when the registry could not be read. d may be an image index or an
// image; an index's signatures are its own (sign it with [sign.WithRecursive] to sign
// its images too, and verify each image by its digest).
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
		return nil, st.fail(err)
	}
	msg := fmt.Sprintf("verified: signed by %s, %d attestations", strings.Join(out.Signers, ", "), len(out.Attestations))
	if !ran {
		msg += " (verdict from the cache, or shared with a concurrent verification)"
	}
	st.finish(msg)
	return out, nil
}

// problem is a signature or attestation that did not verify, and why.
type problem struct {
	code          sign.ReasonCode
	predicateType string // attestations: the claimed (unverified) predicate type, if readable
	msg           string
}

func (v *Verifier) verify(ctx context.Context, d name.Digest) (*sign.Verified, error) {
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", d, err)
	}
	var (
		wg             sync.WaitGroup
		sigs, atts     []layer
		sigErr, attErr error
	)
	wg.Add(2)
	go func() { defer wg.Done(); sigs, sigErr = v.fetch(ctx, d, ociremote.SignatureTag) }()
	go func() { defer wg.Done(); atts, attErr = v.fetch(ctx, d, ociremote.AttestationTag) }()
	wg.Wait()
	if err := errors.Join(sigErr, attErr); err != nil {
		return nil, fmt.Errorf("verify %s: %w", d, err)
	}

	out := &sign.Verified{Digest: d}
	signers := map[string]string{} // fingerprint → name
	memo := certMemo{}             // the layers of an image usually share one certificate
	var sigProblems []problem
	for i, sig := range sigs {
		who, p := v.checkSignature(ctx, sig, h, memo)
		if p != nil {
			p.msg = fmt.Sprintf("signature %d: %s", i+1, p.msg)
			sigProblems = append(sigProblems, *p)
			continue
		}
		signers[who.fingerprint] = who.name
	}
	var attProblems []problem
	for i, att := range atts {
		a, p := v.checkAttestation(ctx, att, h, memo)
		if p != nil {
			p.msg = fmt.Sprintf("attestation %d: %s", i+1, p.msg)
			attProblems = append(attProblems, *p)
			continue
		}
		out.Attestations = append(out.Attestations, *a)
	}
	for _, n := range signers {
		out.Signers = append(out.Signers, n)
	}
	sort.Strings(out.Signers)
	sort.SliceStable(out.Attestations, func(i, j int) bool {
		return out.Attestations[i].PredicateType < out.Attestations[j].PredicateType
	})

	reasons := v.judge(out, len(signers), sigs, sigProblems, attProblems)
	if len(reasons) > 0 {
		v.opts.log.InfoContext(ctx, "image denied", "digest", d.String(), "reasons", len(reasons))
		return nil, &sign.DeniedError{Digest: d, Reasons: reasons}
	}
	v.opts.log.DebugContext(ctx, "image verified", "digest", d.String(), "signers", out.Signers)
	return out, nil
}

// judge applies the policy to what verified and lists every reason it fails.
func (v *Verifier) judge(out *sign.Verified, nSigners int, sigs []layer, sigProblems, attProblems []problem) []sign.Reason {
	var reasons []sign.Reason
	threshold := v.policy.EffectiveThreshold()
	switch {
	case len(sigs) == 0:
		reasons = append(reasons, sign.Reason{Code: sign.ReasonUnsigned, Message: "no signature"})
	case nSigners < threshold:
		for _, p := range sigProblems {
			reasons = append(reasons, sign.Reason{Code: p.code, Message: p.msg})
		}
		if threshold > 1 || len(sigProblems) == 0 {
			reasons = append(reasons, sign.Reason{Code: sign.ReasonThreshold, Message: fmt.Sprintf(
				"signed by %d of the %d trusted signers required (%s)", nSigners, threshold, strings.Join(out.Signers, ", "))})
		}
	}

	// Required predicates and conditions: sign's one judgement (per platform for an
	// index whose platforms were read).
	judged := v.policy.Judge(out)
	reasons = append(reasons, judged...)
	if len(judged) > 0 {
		for _, p := range attProblems {
			reasons = append(reasons, sign.Reason{Code: p.code, Message: p.msg})
		}
	}
	return reasons
}

// fetch reads the signatures (or attestations) of d, each with its payload in memory.
func (v *Verifier) fetch(ctx context.Context, d name.Digest, tagFn func(name.Reference, ...ociremote.Option) (name.Tag, error)) ([]layer, error) {
	oo := pullOptions(ctx, v.puller)
	tag, err := tagFn(d, oo...)
	if err != nil {
		return nil, err
	}
	sigs, err := ociremote.Signatures(tag, oo...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", tag, err)
	}
	list, err := sigs.Get()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", tag, err)
	}
	out := make([]layer, len(list))
	errs := make([]error, len(list))
	var wg sync.WaitGroup
	for i, s := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// static.Copy reads the payload and annotations once; a payload that cannot
			// be read (a blob that does not match its digest) is kept as unreadable.
			c, err := static.Copy(s)
			if err != nil {
				if ctx.Err() != nil {
					errs[i] = ctx.Err()
					return
				}
				out[i] = layer{err: err}
				return
			}
			out[i] = layer{sig: c}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("read %s: %w", tag, err)
	}
	return out, nil
}

// layer is one signature or attestation as read from the registry: the signature
// with its payload in memory, or why its content could not be read.
type layer struct {
	sig oci.Signature
	err error
}

// checkSignature verifies one signature with every trusted signer; it returns the
// signer that verified it, or the problem.
func (v *Verifier) checkSignature(ctx context.Context, l layer, h v1.Hash, memo certMemo) (*signer, *problem) {
	if l.err != nil {
		return nil, &problem{code: sign.ReasonMalformed, msg: "cannot be read: " + l.err.Error()}
	}
	sig := l.sig
	payload, err := sig.Payload()
	if err != nil {
		return nil, &problem{code: sign.ReasonMalformed, msg: "cannot be read: " + err.Error()}
	}
	var simple struct {
		Critical struct {
			Image struct {
				Digest string `json:"docker-manifest-digest"`
			} `json:"image"`
			Type string `json:"type"`
		} `json:"critical"`
	}
	if err := json.Unmarshal(payload, &simple); err != nil {
		return nil, &problem{code: sign.ReasonMalformed, msg: "payload is not a cosign signature payload: " + err.Error()}
	}
	b64, err := sig.Base64Signature()
	if err != nil {
		return nil, &problem{code: sign.ReasonMalformed, msg: "no signature value: " + err.Error()}
	}
	if _, err := base64.StdEncoding.DecodeString(b64); err != nil || b64 == "" {
		return nil, &problem{code: sign.ReasonMalformed, msg: "signature value is not base64"}
	}
	return v.trust(ctx, sig, h, trustCheck{memo: memo,
		verify: cosignlib.VerifyImageSignature, claims: cosignlib.SimpleClaimVerifier,
		untrusted: sign.ReasonUntrustedSignature,
		wrongSubject: func(signer string) string {
			return fmt.Sprintf("signed by trusted %s for image %s, not this image (copied from another digest?)", signer, simple.Critical.Image.Digest)
		},
		notTrusted: "not signed by a trusted key (signed by another key, or altered after signing)",
	})
}

// checkAttestation verifies one attestation with every trusted signer; it returns
// the verified statement, or the problem.
func (v *Verifier) checkAttestation(ctx context.Context, l layer, h v1.Hash, memo certMemo) (*sign.Attestation, *problem) {
	if l.err != nil {
		return nil, &problem{code: sign.ReasonMalformed, msg: "cannot be read: " + l.err.Error()}
	}
	att := l.sig
	payload, err := att.Payload()
	if err != nil {
		return nil, &problem{code: sign.ReasonMalformed, msg: "cannot be read: " + err.Error()}
	}
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []struct {
			Sig string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(payload, &env); err != nil {
		return nil, &problem{code: sign.ReasonMalformed, msg: "not a DSSE envelope: " + err.Error()}
	}
	if env.PayloadType != types.IntotoPayloadType {
		return nil, &problem{code: sign.ReasonMalformed, msg: fmt.Sprintf("DSSE payload type %q, want %q", env.PayloadType, types.IntotoPayloadType)}
	}
	stBytes, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, &problem{code: sign.ReasonMalformed, msg: "DSSE payload is not base64"}
	}
	var st struct {
		PredicateType string          `json:"predicateType"`
		Predicate     json.RawMessage `json:"predicate"`
	}
	if err := json.Unmarshal(stBytes, &st); err != nil {
		return nil, &problem{code: sign.ReasonMalformed, msg: "payload is not an in-toto statement: " + err.Error()}
	}
	if len(env.Signatures) == 0 {
		return nil, &problem{code: sign.ReasonMalformed, predicateType: st.PredicateType, msg: "DSSE envelope has no signature"}
	}
	a, p := v.trust(ctx, att, h, trustCheck{memo: memo,
		verify: cosignlib.VerifyBlobAttestation, claims: cosignlib.IntotoSubjectClaimVerifier,
		untrusted: sign.ReasonUntrustedAttestation, prefix: "attestation of " + st.PredicateType + ": ",
		wrongSubject: func(signer string) string {
			return fmt.Sprintf("attestation of %s signed by trusted %s is about another image (copied from another digest?)", st.PredicateType, signer)
		},
		notTrusted: fmt.Sprintf("attestation of %s is not signed by a trusted key (signed by another key, or altered after signing)", st.PredicateType),
	})
	if p != nil {
		p.predicateType = st.PredicateType
		return nil, p
	}
	return &sign.Attestation{PredicateType: st.PredicateType, Predicate: st.Predicate, Signer: a.name}, nil
}
