package cosign

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/shipkit/shipkit/sign"
)

// DefaultMaxReferrers is how many sigstore bundles may refer to one image (see
// [WithMaxReferrers]). cosign v3 pushes one referrer per signature and one per
// attestation, so an image signed and attested by every pipeline run has a
// handful; 64 leaves room for years of re-signing, as [DefaultMaxLayers] does for
// the legacy layout.
const DefaultMaxReferrers = 64

// WithMaxReferrers bounds how many sigstore bundle referrers of one image a
// [Verifier] reads (default [DefaultMaxReferrers]). Referrers of other artifact
// types (SBOMs pushed by other tools, …) are not counted and not read. An image
// with more bundle referrers is not read at all and denies with a reason that
// gives the count. n must be at least 1.
func WithMaxReferrers(n int) Option {
	return func(o *options) { o.limits.setInt(&o.limits.maxReferrers, "cosign.WithMaxReferrers", n) }
}

// referrerListing is what an image's referrers list: the sigstore bundles that
// refer to it, each read and judged on its own, or the problem that keeps them
// from being read.
type referrerListing struct {
	repo name.Repository
	refs []bundleRef
	// problem, when set, denies the image whatever else verified.
	problem *problem
}

// bundleRef is one bundle referrer: its manifest's descriptor as the referrers
// list gives it and, once the manifest is read, its bundle layer or the problem.
type bundleRef struct {
	manifest v1.Descriptor
	layer    v1.Descriptor
	prob     *problem
	// predicateType is the manifest's predicate type annotation: unverified, it
	// only says where a bundle that cannot be read is reported (with the
	// signatures, or the attestations).
	predicateType string
}

// isBundleType reports whether an artifact or layer media type is a sigstore
// bundle's, of any version.
func isBundleType(mt string) bool { return strings.HasPrefix(mt, bundleMediaTypePrefix) }

// isBundleReferrer reports whether a referrer, as the referrers list describes
// it, holds a sigstore bundle: its artifact type is a bundle's or, from a
// registry that reports the config's media type instead of the manifest's
// artifactType (go-containerregistry's registry), it has cosign v3's bundle
// annotations. Its manifest then says for sure (readReferrer).
func isBundleReferrer(m v1.Descriptor) bool {
	if isBundleType(m.ArtifactType) {
		return true
	}
	_, content := m.Annotations[annBundleContent]
	_, pt := m.Annotations[annBundlePredicateType]
	return m.ArtifactType == emptyMediaType && (content || pt)
}

// listReferrers lists the sigstore bundles that refer to subject, through the
// registry's referrers API or, where the registry has none (the distribution
// server before v3), the referrers tag schema (the index tagged sha256-HEX);
// go-containerregistry picks. No referrer lists nothing.
func (v *Verifier) listReferrers(ctx context.Context, subject name.Digest, sem chan struct{}) (referrerListing, error) {
	out := referrerListing{repo: subject.Repository}
	idx, err := remote.Referrers(subject, remote.WithContext(ctx), remote.Reuse(v.puller))
	var te *transport.Error
	switch {
	case errors.As(err, &te) && (te.StatusCode == http.StatusNotFound || te.StatusCode == http.StatusNotAcceptable):
		return out, nil
	case errors.Is(err, errBodyTooLarge):
		out.problem = denyProblem(sign.ReasonMalformed, fmt.Sprintf(
			"the image's referrers list is larger than %d bytes, the limit of a manifest; it was not read", maxManifestSize))
		return out, nil
	case err != nil:
		return referrerListing{}, fmt.Errorf("list the referrers of %s: %w", subject, err)
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return referrerListing{}, fmt.Errorf("list the referrers of %s: %w", subject, err)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		out.problem = denyProblem(sign.ReasonMalformed, "the image's referrers list cannot be parsed ("+jsonErrorText(err)+")")
		return out, nil
	}
	for _, m := range im.Manifests {
		if !isBundleReferrer(m) {
			continue
		}
		out.refs = append(out.refs, bundleRef{manifest: m, predicateType: m.Annotations[annBundlePredicateType]})
	}
	if n := len(out.refs); n > v.opts.limits.maxReferrers {
		out.refs = nil
		out.problem = denyProblem(sign.ReasonMalformed, fmt.Sprintf(
			"%d sigstore bundles refer to the image, more than the limit of %d (cosign.WithMaxReferrers); none was read", n, v.opts.limits.maxReferrers))
		return out, nil
	}
	h, err := v1.NewHash(subject.DigestStr())
	if err != nil {
		return referrerListing{}, err
	}
	if err := v.readReferrers(ctx, &out, h, sem); err != nil {
		return referrerListing{}, err
	}
	return out, nil
}

// readReferrer reads the manifest of one bundle referrer of the image h and finds
// its bundle layer: the manifest must name h as its subject and hold one layer of
// a sigstore bundle media type. A manifest the registry no longer has (deleted
// after the list was made) is skipped.
func (v *Verifier) readReferrer(ctx context.Context, repo name.Repository, h v1.Hash, r *bundleRef) error {
	if r.manifest.Size > maxManifestSize || r.manifest.Size < 0 {
		r.prob = denyProblem(sign.ReasonMalformed, fmt.Sprintf(
			"its manifest's descriptor declares %d bytes, more than %d, the limit of a manifest; it was not read", r.manifest.Size, maxManifestSize))
		return nil
	}
	desc, err := v.puller.Get(ctx, repo.Digest(r.manifest.Digest.String()))
	var te *transport.Error
	switch {
	case errors.As(err, &te) && te.StatusCode == http.StatusNotFound:
		r.prob = &problem{code: sign.ReasonMalformed, msg: "listed as a referrer, but the registry does not have its manifest"}
		return nil
	case errors.Is(err, errBodyTooLarge):
		r.prob = denyProblem(sign.ReasonMalformed, fmt.Sprintf("its manifest is larger than %d bytes, the limit of a manifest; it was not read", maxManifestSize))
		return nil
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		v.opts.log.DebugContext(ctx, "referrer manifest cannot be read", "digest", r.manifest.Digest.String(), "error", truncate(err.Error(), 512))
		r.prob = &problem{code: sign.ReasonMalformed, msg: "its manifest cannot be read (or does not match its digest)"}
		return nil
	}
	var m struct {
		Subject *v1.Descriptor  `json:"subject"`
		Layers  []v1.Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		r.prob = &problem{code: sign.ReasonMalformed, msg: "its manifest cannot be parsed (" + jsonErrorText(err) + ")"}
		return nil
	}
	switch {
	case m.Subject == nil:
		r.prob = denyProblem(sign.ReasonWrongSubject, "listed as a referrer of the image, but its manifest names no subject")
	case m.Subject.Digest != h:
		r.prob = denyProblem(sign.ReasonWrongSubject, fmt.Sprintf(
			"listed as a referrer of the image, but its manifest's subject is %s (a referrer of another image)", safeDigest(m.Subject.Digest.String())))
	case len(m.Layers) != 1:
		r.prob = &problem{code: sign.ReasonMalformed, msg: fmt.Sprintf("a sigstore bundle artifact holds one layer; this one holds %d", len(m.Layers))}
	case !isBundleType(string(m.Layers[0].MediaType)):
		r.prob = &problem{code: sign.ReasonMalformed, msg: "its layer is not a sigstore bundle (media type " + safeType(string(m.Layers[0].MediaType)) + ")"}
	default:
		r.layer = m.Layers[0]
	}
	return nil
}

// readReferrers reads the manifests of the listing's bundle referrers of the
// image h, right after the list, so that they are read while the other listings
// (the legacy tags, the platforms) are. sem, shared by the verification's
// listings, holds [WithConcurrency] slots: with the listings' own, a verification
// reads at most twice that many manifests at once.
func (v *Verifier) readReferrers(ctx context.Context, l *referrerListing, h v1.Hash, sem chan struct{}) error {
	errs := make([]error, len(l.refs))
	var wg sync.WaitGroup
	for i := range l.refs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = v.readReferrer(ctx, l.repo, h, &l.refs[i])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
