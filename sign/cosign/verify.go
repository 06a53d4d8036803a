package cosign

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shipkit/shipkit/sign"
)

// target is one image a verification reads the cosign tags of: the verified image,
// or a platform image of the verified index.
type target struct {
	digest name.Digest
	hash   v1.Hash
	// platform is a platform image's platform, as the index lists it.
	platform *v1.Platform
	// prefix starts the reasons about this image's layers ("" for the verified
	// image).
	prefix string
	// kinds are the tags read: both for the verified image, attestations only for
	// a platform image (its signatures are not required).
	kinds []kind
	tags  [nKinds]listing
	// found holds, per kind and layer, what judging the layer found.
	found [nKinds][]found
	// referrers are the sigstore bundles that refer to the image, and bundles
	// what judging each found.
	referrers referrerListing
	bundles   []bundleFound
}

// found is what judging one layer found: the signer of a signature, a verified
// attestation, or the problem. The layer's payload is not kept.
type found struct {
	signer *signer
	att    *sign.Attestation
	prob   *problem
}

// verify reads and judges d's signatures and attestations within the limits: the
// cosign tags' manifests and d's own first (for an index, then its platform
// images' attestation tags), then each layer, read and judged by at most
// [WithConcurrency] goroutines holding at most [WithMaxPayloadSize] bytes of
// payload together; a layer's payload is dropped once judged.
func (v *Verifier) verify(ctx context.Context, d name.Digest) (*sign.Verified, error) {
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", d, err)
	}
	root := &target{digest: d, hash: h, kinds: []kind{kindSignature, kindAttestation}}
	var (
		plats   []platformImage
		idxProb *problem
		idxErr  error
	)
	if err := v.listAll(ctx, []*target{root}, func() { plats, idxProb, idxErr = v.platforms(ctx, d) }); err != nil {
		return nil, fmt.Errorf("verify %s: %w", d, err)
	}
	if idxErr != nil {
		return nil, fmt.Errorf("verify %s: %w", d, idxErr)
	}
	targets := []*target{root}
	for _, p := range plats {
		targets = append(targets, &target{digest: p.digest, hash: p.hash, platform: p.platform,
			prefix: p.label() + ": ", kinds: []kind{kindAttestation}})
	}
	if err := v.listAll(ctx, targets[1:], nil); err != nil {
		return nil, fmt.Errorf("verify %s: %w", d, err)
	}
	if err := v.judgeAll(ctx, targets); err != nil {
		return nil, fmt.Errorf("verify %s: %w", d, err)
	}

	out := &sign.Verified{Digest: d}
	signers := map[string]string{} // fingerprint → name
	var sigProblems, attProblems []problem
	var reasons []sign.Reason // problems that deny whatever else verified
	nBundleSigs := 0          // the image's signature bundles, verified or not
	if idxProb != nil {
		reasons = append(reasons, idxProb.reason(""))
	}
	for _, t := range targets {
		var atts []sign.Attestation
		for _, k := range t.kinds {
			if p := t.tags[k].problem; p != nil {
				reasons = append(reasons, p.reason(t.prefix))
			}
			for i, f := range t.found[k] {
				prefix := fmt.Sprintf("%s%s %d: ", t.prefix, k, i+1)
				switch {
				case f.prob != nil && f.prob.deny:
					reasons = append(reasons, f.prob.reason(prefix))
				case f.prob != nil && k == kindSignature:
					sigProblems = append(sigProblems, problem{code: f.prob.code, msg: prefix + f.prob.msg})
				case f.prob != nil:
					attProblems = append(attProblems, problem{code: f.prob.code, msg: prefix + f.prob.msg})
				case f.signer != nil:
					signers[f.signer.fingerprint] = f.signer.name
				case f.att != nil:
					atts = append(atts, *f.att)
				}
			}
		}
		if p := t.referrers.problem; p != nil {
			reasons = append(reasons, p.reason(t.prefix))
		}
		for i := range t.referrers.refs {
			r := &t.referrers.refs[i]
			prefix := fmt.Sprintf("%sbundle %s: ", t.prefix, shortDigest(r.manifest.Digest))
			kindOf := kindAttestation
			if r.predicateType == cosignSignPredicateType {
				kindOf = kindSignature
			}
			f := bundleFound{kind: kindOf, found: found{prob: r.prob}}
			if r.prob == nil {
				f = t.bundles[i]
			}
			if f.kind == kindSignature && t != root {
				continue // a platform image's signatures are not read
			}
			if f.kind == kindSignature && !f.skip {
				nBundleSigs++
			}
			switch {
			case f.skip:
			case f.prob != nil && f.prob.deny:
				reasons = append(reasons, f.prob.reason(prefix))
			case f.prob != nil && f.kind == kindSignature:
				sigProblems = append(sigProblems, problem{code: f.prob.code, msg: prefix + f.prob.msg})
			case f.prob != nil:
				attProblems = append(attProblems, problem{code: f.prob.code, msg: prefix + f.prob.msg})
			case f.signer != nil:
				signers[f.signer.fingerprint] = f.signer.name
			case f.att != nil:
				atts = append(atts, *f.att)
			}
		}
		sortAttestations(atts)
		if t == root {
			out.Attestations = atts
			continue
		}
		out.Platforms = append(out.Platforms, sign.PlatformVerified{Digest: t.digest, Platform: t.platform, Attestations: atts})
	}
	for _, n := range signers {
		out.Signers = append(out.Signers, n)
	}
	sort.Strings(out.Signers)

	nSigs := len(root.tags[kindSignature].layers) + nBundleSigs
	if root.tags[kindSignature].problem != nil || root.referrers.problem != nil {
		nSigs = -1 // there are signatures, unread
	}
	reasons = append(v.judge(out, len(signers), nSigs, sigProblems, attProblems), reasons...)
	if len(reasons) > 0 {
		v.opts.log.InfoContext(ctx, "image denied", "digest", d.String(), "reasons", len(reasons))
		return nil, &sign.DeniedError{Digest: d, Reasons: reasons}
	}
	v.opts.log.DebugContext(ctx, "image verified", "digest", d.String(), "signers", out.Signers, "platforms", len(out.Platforms))
	return out, nil
}

func sortAttestations(atts []sign.Attestation) {
	sort.SliceStable(atts, func(i, j int) bool { return atts[i].PredicateType < atts[j].PredicateType })
}

// listAll reads the cosign tags of every target, and runs also (when not nil)
// beside them, [WithConcurrency] at a time.
func (v *Verifier) listAll(ctx context.Context, targets []*target, also func()) error {
	b := newBudget(v.opts.limits)
	var errs []error
	run := func(f func()) bool {
		if err := b.goWith(ctx, 0, f); err != nil {
			errs = append(errs, err)
			return false
		}
		return true
	}
	if also != nil && !run(also) {
		b.wait()
		return errors.Join(errs...)
	}
	listErrs := make([][nKinds + 1]error, len(targets))
	sem := make(chan struct{}, v.opts.limits.concurrency) // the referrers' manifests
outer:
	for i, t := range targets {
		for _, k := range t.kinds {
			if !run(func() { t.tags[k], listErrs[i][k] = v.list(ctx, t.digest, k) }) {
				break outer
			}
		}
		if !run(func() { t.referrers, listErrs[i][nKinds] = v.listReferrers(ctx, t.digest, sem) }) {
			break outer
		}
	}
	b.wait()
	for _, e := range listErrs {
		errs = append(errs, e[:]...)
	}
	return errors.Join(errs...)
}

// judgeAll reads and judges every layer the targets' tags list: a layer is read
// once a read slot and its declared size of the payload budget are free, and its
// payload is dropped once judged.
func (v *Verifier) judgeAll(ctx context.Context, targets []*target) error {
	b := newBudget(v.opts.limits)
	memo := &certMemo{} // the layers of an image usually share one certificate
	var ctxErr error
outer:
	for _, s := range targets {
		for _, k := range s.kinds {
			l := s.tags[k]
			s.found[k] = make([]found, len(l.layers))
			for i, desc := range l.layers {
				f := &s.found[k][i]
				weight := desc.Size // what reading it holds; a layer over the limit is not read
				if weight > v.opts.limits.maxPayload || weight < 0 {
					weight = 0
				}
				err := b.goWith(ctx, weight, func() {
					payload, p, err := v.read(ctx, l.repo, desc)
					switch {
					case err != nil: // ctx ended: the verification fails with its error
						f.prob = &problem{code: sign.ReasonMalformed, msg: "not read"}
					case p != nil:
						f.prob = p
					case k == kindSignature:
						f.signer, f.prob = v.checkSignature(ctx, payload, desc, s.hash, memo)
					default:
						f.att, f.prob = v.checkAttestation(ctx, payload, desc, s.hash, memo)
					}
				})
				if err != nil {
					ctxErr = err
					break outer
				}
			}
		}
	}
	if ctxErr == nil {
	bundles:
		for _, s := range targets {
			s.bundles = make([]bundleFound, len(s.referrers.refs))
			for i := range s.referrers.refs {
				r := &s.referrers.refs[i]
				if r.prob != nil {
					continue
				}
				f := &s.bundles[i]
				weight := r.layer.Size
				if weight > v.opts.limits.maxPayload || weight < 0 {
					weight = 0
				}
				wantSig := slices.Contains(s.kinds, kindSignature)
				err := b.goWith(ctx, weight, func() {
					payload, p, err := v.read(ctx, s.referrers.repo, r.layer)
					switch {
					case err != nil:
						f.prob = &problem{code: sign.ReasonMalformed, msg: "not read"}
					case p != nil:
						f.prob = p
						f.kind = kindAttestation
						if r.predicateType == cosignSignPredicateType {
							f.kind = kindSignature
						}
					default:
						*f = v.judgeBundle(ctx, payload, r, s.hash, wantSig)
					}
				})
				if err != nil {
					ctxErr = err
					break bundles
				}
			}
		}
	}
	b.wait()
	if ctxErr == nil {
		ctxErr = ctx.Err()
	}
	return ctxErr
}

// judge applies the policy to what verified and lists every reason it fails.
// nSigs is the number of signature layers found (-1: some, not read).
func (v *Verifier) judge(out *sign.Verified, nSigners, nSigs int, sigProblems, attProblems []problem) []sign.Reason {
	var reasons []sign.Reason
	threshold := v.policy.EffectiveThreshold()
	switch {
	case nSigs == 0:
		reasons = append(reasons, sign.Reason{Code: sign.ReasonUnsigned, Message: "no signature"})
	case nSigners < threshold:
		for _, p := range sigProblems {
			reasons = append(reasons, p.reason(""))
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
			reasons = append(reasons, p.reason(""))
		}
	}
	return reasons
}

// shortDigest names a referrer in reasons by the first 12 hex digits of its
// manifest's digest.
func shortDigest(h v1.Hash) string {
	if len(h.Hex) > 12 {
		return h.Hex[:12]
	}
	return h.Hex
}
