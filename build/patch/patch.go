// Package patch finds the images built on a base that has moved on, and moves
// them onto the current base: a hardened base catalog is rebuilt when a fix
// lands, and every image built on it follows.
//
// [Check] reads, for each image (by digest, e.g. a fleet inventory's), the base
// annotations the build stage writes (org.opencontainers.image.base.name and
// .base.digest) from its manifest alone, no layer, and compares the digest with
// what the base's tag resolves to now in the catalog: [Current], [Stale], or
// [Unknown] when the image records no base (never reported as current). [Rebase]
// then verifies a stale image with the caller's sign.Verifier (Check's verdict
// rests on the image's own, unverified annotations: an image that does not verify
// is refused, never re-signed), puts its own layers on the current base with
// build.Rebase, pushes the result by digest to the image's repository, signs it and
// attests it again: the predicates the caller computes for the new image (its
// SBOM, its vulnerability report) and a SLSA provenance that records the rebase,
// its source taken from the old image's verified provenance. The caller gates and
// rolls the new digest out, e.g. as a canary with deploy/rollout.
//
// The package links no SBOM, vulnerability or signing implementation: those come
// in as sign.Verifier, sign.Signer, sign.Attester and a function.
package patch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shipkit/shipkit/build"
	"github.com/shipkit/shipkit/build/publish"
	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/sign"
)

// Errors a caller may branch on with errors.Is.
var (
	// ErrInvalidOption: an option or a required input has a value that cannot be
	// used; the sentinel every stage shares.
	ErrInvalidOption = option.ErrInvalid
	// ErrNotStale: [Rebase] was given an image that is not [Stale].
	ErrNotStale = errors.New("image is not stale")
	// ErrUnverified: [Rebase] was given an image its verifier did not admit; the
	// error is an *[UnverifiedError].
	ErrUnverified = errors.New("image does not verify")
)

// UnverifiedError is [Rebase]'s refusal of an image that did not verify: nothing
// was pushed, signed or attested. errors.Is matches [ErrUnverified] and, for a
// policy denial, sign.ErrDenied (errors.As finds the *sign.DeniedError).
type UnverifiedError struct {
	// Image is the image refused.
	Image name.Digest
	// Reasons say why: the denial's reasons, or the verifier's error.
	Reasons []string
	// Err is the verifier's error.
	Err error
}

// Error names the image and lists the reasons.
func (e *UnverifiedError) Error() string {
	return sign.ListReasons("rebase "+e.Image.String()+": refused, "+ErrUnverified.Error(), e.Reasons)
}

// Unwrap returns [ErrUnverified] and the verifier's error.
func (e *UnverifiedError) Unwrap() []error { return []error{ErrUnverified, e.Err} }

// Status is what [Check] found about one image's base.
type Status string

// The statuses.
const (
	// Current: built on the digest the catalog's tag points at now.
	Current Status = "current"
	// Stale: built on a digest the tag no longer points at; [Rebase] it.
	Stale Status = "stale"
	// Unknown: the image records no base (built on scratch, by another tool, or
	// annotations stripped); it is not known to be current.
	Unknown Status = "unknown"
	// OtherBase: the image's base is not in the catalog.
	OtherBase Status = "other-base"
	// BaseGone: the base's tag is in the catalog but no longer in the registry,
	// or (for a single image, checked against the base's index) the base's
	// current index cannot be read; the reason says which.
	BaseGone Status = "base-gone"
	// ImageGone: the image itself cannot be read from the registry.
	ImageGone Status = "image-gone"
)

// Image is one image's base, as [Check] found it.
type Image struct {
	// Ref is the image, by digest.
	Ref name.Digest
	// Status is what was found.
	Status Status
	// BaseName is the base reference the image records (base.name), e.g.
	// "registry.example.com/base:1".
	BaseName string
	// Built is the base digest the image records; Current what the base's tag
	// resolves to now (zero unless the tag was resolved).
	Built, Current v1.Hash
	// Annotations are the annotations of the image's index (or manifest), for the
	// provenance of a rebase.
	Annotations map[string]string
	// Reason says why the status is not Current or Stale.
	Reason string
}

// Report is the result of [Check]: every image in the order given.
type Report struct {
	Images []Image
	// Bases are the catalog's tags with the digest each resolves to now (absent:
	// the tag could not be resolved; see the images' reasons).
	Bases map[string]v1.Hash
}

// Count returns how many images have status s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, im := range r.Images {
		if im.Status == s {
			n++
		}
	}
	return n
}

// Options configure [Check] and [Rebase].
type Options struct {
	// Remote are go-containerregistry options for every registry request (auth,
	// transport); the context is added. Default: authn.DefaultKeychain.
	Remote []remote.Option
}

func (o Options) remote(ctx context.Context) []remote.Option {
	out := []remote.Option{remote.WithContext(ctx)}
	if len(o.Remote) == 0 {
		out = append(out, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	return append(out, o.Remote...)
}

// Check resolves each catalog tag once (a HEAD request) and reads each image's
// base annotations (its manifest only), and says which images are stale. An
// image that is a single manifest records its platform's image of the base: it
// is current when that is the current index's image of the image's own platform
// (its config's); when that index cannot be read the image is [BaseGone], with
// the reason. A
// catalog entry that is not a valid reference is an error wrapping
// [ErrInvalidOption]; a tag or image that cannot be read is a status with a
// reason, and the rest goes on. Only a cancelled context stops it.
func Check(ctx context.Context, images []name.Digest, catalog []string, opts Options) (*Report, error) {
	var bad option.List
	bases := map[string]name.Reference{} // by normalized name
	for _, c := range catalog {
		ref, err := name.ParseReference(c)
		if err != nil {
			bad.Addf("catalog entry %q: %v", c, err)
			continue
		}
		bases[ref.Name()] = ref
	}
	if err := bad.Err("check bases"); err != nil {
		return nil, err
	}
	rep := &Report{Bases: map[string]v1.Hash{}}
	resolved := map[string]error{}
	keys := make([]string, 0, len(bases))
	for k := range bases {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("check bases: %w", err)
		}
		desc, err := remote.Head(bases[k], opts.remote(ctx)...)
		if err != nil {
			resolved[k] = err
			continue
		}
		rep.Bases[k] = desc.Digest
	}
	platforms := map[string]*baseIndex{}
	for _, d := range images {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("check bases: %w", err)
		}
		rep.Images = append(rep.Images, checkImage(ctx, d, bases, rep.Bases, resolved, platforms, opts))
	}
	return rep, nil
}

// checkImage checks one image. platforms caches, per base digest, the platform
// images of the base's current index.
func checkImage(ctx context.Context, d name.Digest, bases map[string]name.Reference, current map[string]v1.Hash, resolveErr map[string]error,
	platforms map[string]*baseIndex, opts Options) Image {
	im := Image{Ref: d}
	ann, img, err := annotations(ctx, d, opts)
	if err != nil {
		im.Status, im.Reason = ImageGone, err.Error()
		return im
	}
	im.Annotations = ann
	im.BaseName = ann[build.AnnotationBaseName]
	built := ann[build.AnnotationBaseDigest]
	if im.BaseName == "" || built == "" {
		im.Status, im.Reason = Unknown, "the image records no base ("+build.AnnotationBaseName+" and .base.digest annotations)"
		return im
	}
	h, err := v1.NewHash(built)
	if err != nil {
		im.Status, im.Reason = Unknown, fmt.Sprintf("%s %q: %v", build.AnnotationBaseDigest, built, err)
		return im
	}
	im.Built = h
	ref, err := name.ParseReference(im.BaseName)
	if err != nil {
		im.Status, im.Reason = Unknown, fmt.Sprintf("%s %q: %v", build.AnnotationBaseName, im.BaseName, err)
		return im
	}
	if _, ok := bases[ref.Name()]; !ok {
		im.Status, im.Reason = OtherBase, im.BaseName+" is not in the catalog"
		return im
	}
	cur, ok := current[ref.Name()]
	if !ok {
		im.Status, im.Reason = BaseGone, fmt.Sprintf("resolving %s: %v", ref.Name(), resolveErr[ref.Name()])
		return im
	}
	im.Current = cur
	switch {
	case cur == h:
		im.Status = Current
	case img != nil:
		// A single image records the base's image of its platform (build.Rebase
		// and the build annotate each platform's manifest so): current when it
		// is the current index's image of the image's own platform.
		base := bases[ref.Name()].Context().Digest(cur.String())
		ok, err := platformOf(ctx, base, h, img, platforms, opts)
		switch {
		case err != nil:
			im.Status, im.Reason = BaseGone, err.Error()
		case ok:
			im.Status = Current
		default:
			im.Status = Stale
		}
	default:
		im.Status = Stale
	}
	return im
}

// baseIndex is a base's current index as platformOf read it, or why it could not.
type baseIndex struct {
	manifests []v1.Descriptor
	err       error
}

// platformOf says whether h is the digest of the image of img's platform in the
// index base (the base's current digest); a base that is not an index has none.
// A base that cannot be read, or an image whose platform cannot, is an error.
// cache keeps each base's answer, errors too.
func platformOf(ctx context.Context, base name.Digest, h v1.Hash, img v1.Image, cache map[string]*baseIndex, opts Options) (bool, error) {
	bi, ok := cache[base.String()]
	if !ok {
		bi = readBaseIndex(ctx, base, opts)
		cache[base.String()] = bi
	}
	if bi.err != nil {
		return false, bi.err
	}
	for _, d := range bi.manifests {
		if d.Digest != h {
			continue
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return false, fmt.Errorf("reading the image's config: %w", err)
		}
		if samePlatform(cf.Platform(), d.Platform) {
			return true, nil
		}
	}
	return false, nil
}

// readBaseIndex reads the manifests of the base's index; a base that is a single
// manifest has none.
func readBaseIndex(ctx context.Context, base name.Digest, opts Options) *baseIndex {
	desc, err := remote.Get(base, opts.remote(ctx)...)
	if err != nil {
		return &baseIndex{err: fmt.Errorf("reading base %s: %w", base, err)}
	}
	if !desc.MediaType.IsIndex() {
		return &baseIndex{}
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return &baseIndex{err: fmt.Errorf("reading base %s: %w", base, err)}
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return &baseIndex{err: fmt.Errorf("reading base %s: %w", base, err)}
	}
	return &baseIndex{manifests: im.Manifests}
}

// samePlatform says whether the image's platform (from its config) is the one an
// index descriptor names: the same OS and architecture, and the same variant when
// both name one.
func samePlatform(img, desc *v1.Platform) bool {
	if img == nil || desc == nil {
		return false
	}
	if img.OS != desc.OS || img.Architecture != desc.Architecture {
		return false
	}
	return img.Variant == "" || desc.Variant == "" || img.Variant == desc.Variant
}

// annotations reads the annotations of the image's index, or of its manifest when
// it is a single image, which it returns too (nil for an index).
func annotations(ctx context.Context, d name.Digest, opts Options) (ann map[string]string, single v1.Image, err error) {
	desc, err := remote.Get(d, opts.remote(ctx)...)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", d, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", d, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", d, err)
		}
		return im.Annotations, nil, nil
	}
	img, err := desc.Image()
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", d, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", d, err)
	}
	return m.Annotations, img, nil
}

// Patched is an image rebased onto its current base and pushed.
type Patched struct {
	// Old and New are the image before and after, by digest, in the same repository.
	Old, New name.Digest
	// Pushed is what New names: the rebased index, or the rebased image when the
	// old image was a single manifest (then Index is nil).
	Pushed
	// BaseName, OldBase and NewBase are the base and its digests before and after.
	BaseName         string
	OldBase, NewBase v1.Hash
	// Attested are the predicate types attested on New, provenance last.
	Attested []string
}

// Pushed is what [Rebase] pushed, as it is in the registry: an index (Index), or,
// for an image that was a single manifest, that one image (Image; a single image
// stays one). Exactly one is set, and its digest is [Patched.New]'s.
type Pushed struct {
	Index v1.ImageIndex
	Image v1.Image
}

// Images returns the pushed platform images: the index's, in its order, or the
// single image.
func (p Pushed) Images() ([]v1.Image, error) {
	if p.Image != nil {
		return []v1.Image{p.Image}, nil
	}
	if p.Index == nil {
		return nil, errors.New("nothing pushed")
	}
	im, err := p.Index.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading the pushed index: %w", err)
	}
	out := make([]v1.Image, 0, len(im.Manifests))
	for _, d := range im.Manifests {
		img, err := p.Index.Image(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading the pushed index's image %s: %w", d.Digest, err)
		}
		out = append(out, img)
	}
	return out, nil
}

// RebaseConfig is what [Rebase] needs besides the image.
type RebaseConfig struct {
	// Verifier admits the image before it is rebased (the trusted signers of the
	// images this job may re-sign, e.g. the build job's key); its verified SLSA
	// provenance, if any, gives the new provenance its source. Required.
	Verifier sign.Verifier
	// Signer signs the new digest (recursively, every platform's image too).
	// Required.
	Signer sign.Signer
	// Attester attests the predicates and the provenance. Required.
	Attester sign.Attester
	// Predicates computes the attestations of the new image d, e.g. its SBOM
	// (re-cataloged) and its vulnerability report (re-run), from what was pushed
	// at d: an index, or a single image when the old image was one (a subject
	// taken from pushed names what is in the registry). May be nil.
	Predicates func(ctx context.Context, d name.Digest, pushed Pushed) ([]sign.Predicate, error)
	// BuilderID names who rebased (SLSA runDetails.builder.id). Required.
	BuilderID string
	// Now is the clock for the provenance's times (default time.Now).
	Now func() time.Time
}

// BuildTypeRebase is the SLSA build type of a rebase's provenance: the external
// parameters name the image rebased and the old and new base digests.
const BuildTypeRebase = "https://shipkit.dev/build/rebase/v1"

// Rebase verifies the stale image im with cfg.Verifier, moves it onto its base's
// current digest (build.Rebase), pushes the result by digest to the image's
// repository, signs it, attests the caller's predicates and a SLSA provenance
// that records the rebase (the new base as a resolved dependency, the old image
// and base digests as parameters, the source repository and revision from the
// old image's verified SLSA provenance, or "unknown" with the parameter
// sourceUnknown saying why when it has none; never from the image's
// annotations), and returns the new digest. An image that is not [Stale] is
// refused with [ErrNotStale], one that does not verify with an
// *[UnverifiedError], before anything is pushed or signed. The old image is left
// as it was.
func Rebase(ctx context.Context, im Image, cfg RebaseConfig, opts Options) (*Patched, error) {
	var bad option.List
	if cfg.Verifier == nil {
		bad.Addf("RebaseConfig.Verifier: nil")
	}
	if cfg.Signer == nil {
		bad.Addf("RebaseConfig.Signer: nil")
	}
	if cfg.Attester == nil {
		bad.Addf("RebaseConfig.Attester: nil")
	}
	if cfg.BuilderID == "" {
		bad.Addf("RebaseConfig.BuilderID: empty")
	}
	if err := bad.Err("rebase " + im.Ref.String()); err != nil {
		return nil, err
	}
	if im.Status != Stale {
		return nil, fmt.Errorf("rebase %s: %w (status %s)", im.Ref, ErrNotStale, im.Status)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	started := now()
	verified, err := cfg.Verifier.Verify(ctx, im.Ref)
	if err != nil {
		ue := &UnverifiedError{Image: im.Ref, Err: err}
		var denied *sign.DeniedError
		if errors.As(err, &denied) {
			for _, r := range denied.Reasons {
				ue.Reasons = append(ue.Reasons, r.Message)
			}
			if !denied.CachedAt.IsZero() {
				ue.Reasons = append(ue.Reasons, fmt.Sprintf("(a cached verdict of %s, kept until %s)",
					denied.CachedAt.UTC().Format(time.RFC3339), denied.CachedUntil.UTC().Format(time.RFC3339)))
			}
		}
		if len(ue.Reasons) == 0 {
			ue.Reasons = []string{err.Error()}
		}
		return nil, ue
	}
	if verified == nil || (verified.Digest.DigestStr() != "" && verified.Digest.DigestStr() != im.Ref.DigestStr()) {
		const why = "the verifier returned no verdict for this digest"
		return nil, &UnverifiedError{Image: im.Ref, Err: errors.New(why), Reasons: []string{why}}
	}
	ropts := opts.remote(ctx)
	idx, single, err := readIndex(im.Ref, ropts)
	if err != nil {
		return nil, fmt.Errorf("rebase %s: %w", im.Ref, err)
	}
	baseRef, err := name.ParseReference(im.BaseName, name.WeakValidation)
	if err != nil {
		return nil, fmt.Errorf("rebase %s: base %q: %w", im.Ref, im.BaseName, err)
	}
	if insecure(im.Ref) {
		if baseRef, err = name.ParseReference(im.BaseName, name.Insecure); err != nil {
			return nil, fmt.Errorf("rebase %s: base %q: %w", im.Ref, im.BaseName, err)
		}
	}
	newBase := build.RemoteBaseRef(baseRef, ropts...)
	rebased, err := build.Rebase(ctx, idx, newBase, build.WithRemoteOptions(ropts...))
	if err != nil {
		return nil, fmt.Errorf("rebase %s: %w", im.Ref, err)
	}
	newRef, pushed, ann, err := push(ctx, rebased, single, im.Ref.Context(), ropts)
	if err != nil {
		return nil, fmt.Errorf("rebase %s: %w", im.Ref, err)
	}
	p := &Patched{Old: im.Ref, New: newRef, Pushed: pushed, BaseName: im.BaseName, OldBase: im.Built}
	if p.NewBase, err = v1.NewHash(ann[build.AnnotationBaseDigest]); err != nil {
		return nil, fmt.Errorf("rebase %s: new base digest: %w", im.Ref, err)
	}
	if err := cfg.Signer.Sign(ctx, newRef, sign.WithRecursive()); err != nil {
		return p, fmt.Errorf("rebase %s: pushed %s, signing it: %w", im.Ref, newRef, err)
	}
	var preds []sign.Predicate
	if cfg.Predicates != nil {
		if preds, err = cfg.Predicates(ctx, newRef, pushed); err != nil {
			return p, fmt.Errorf("rebase %s: pushed %s, its attestations: %w", im.Ref, newRef, err)
		}
	}
	prov := sign.Provenance{BuilderID: cfg.BuilderID, BuildType: BuildTypeRebase,
		BaseImage: im.BaseName, BaseDigest: p.NewBase.String()}
	prov.Parameters = map[string]any{
		"rebasedFrom": im.Ref.String(),
		"oldBase":     im.BaseName + "@" + im.Built.String(),
		"newBase":     im.BaseName + "@" + p.NewBase.String(),
	}
	if repo, rev, why := verifiedSource(verified); why == "" {
		prov.SourceRepository, prov.SourceRevision = repo, rev
	} else {
		prov.SourceRepository, prov.SourceRevision = SourceUnknown, SourceUnknown
		prov.Parameters["sourceUnknown"] = why
	}
	prov.StartedOn, prov.FinishedOn = started, now()
	pp, err := prov.Predicate()
	if err != nil {
		return p, fmt.Errorf("rebase %s: pushed %s, its provenance: %w", im.Ref, newRef, err)
	}
	for _, pr := range append(preds, pp) {
		if err := cfg.Attester.Attest(ctx, newRef, pr); err != nil {
			return p, fmt.Errorf("rebase %s: pushed %s, attesting %s: %w", im.Ref, newRef, pr.Type, err)
		}
		p.Attested = append(p.Attested, pr.Type)
	}
	return p, nil
}

// SourceUnknown is the source repository and revision of a rebase's provenance
// when the rebased image had no verified SLSA provenance to take them from; the
// external parameter sourceUnknown then says why.
const SourceUnknown = "unknown"

// verifiedSource returns the source repository and revision that the image's
// verified SLSA provenance attestations (on the image itself) record, or why there
// is none: no provenance, one without a source, or several that disagree.
func verifiedSource(v *sign.Verified) (repo, rev, why string) {
	n := 0
	for _, a := range v.Attestations {
		if a.PredicateType != sign.PredicateSLSAProvenance {
			continue
		}
		n++
		var pred struct {
			BuildDefinition struct {
				ExternalParameters struct {
					Source struct {
						Repository string `json:"repository"`
						Revision   string `json:"revision"`
					} `json:"source"`
				} `json:"externalParameters"`
			} `json:"buildDefinition"`
		}
		if err := json.Unmarshal(a.Predicate, &pred); err != nil {
			return "", "", "the image's verified SLSA provenance is not readable"
		}
		src := pred.BuildDefinition.ExternalParameters.Source
		if src.Repository == "" || src.Revision == "" || src.Repository == SourceUnknown || src.Revision == SourceUnknown {
			return "", "", "the image's verified SLSA provenance records no source"
		}
		if repo != "" && (repo != src.Repository || rev != src.Revision) {
			return "", "", "the image's verified SLSA provenances disagree on the source"
		}
		repo, rev = src.Repository, src.Revision
	}
	if n == 0 {
		return "", "", "the image has no verified SLSA provenance"
	}
	if strings.ContainsAny(repo+rev, "\x00\n") {
		return "", "", "the image's verified SLSA provenance records an unusable source"
	}
	return repo, rev, ""
}

// readIndex reads the image as an index; a single image becomes a one-platform
// index (its platform from its config), as build.Rebase takes indexes, and
// single says so.
func readIndex(d name.Digest, ropts []remote.Option) (idx v1.ImageIndex, single bool, err error) {
	desc, err := remote.Get(d, ropts...)
	if err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
			return nil, false, fmt.Errorf("image gone from the registry: %w", err)
		}
		return nil, false, err
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		return idx, false, err
	}
	img, err := desc.Image()
	if err != nil {
		return nil, false, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, false, err
	}
	p := cf.Platform()
	if p == nil {
		return nil, false, errors.New("the image's config names no platform")
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}}), true, nil
}

// push pushes the rebased image by digest to repo and returns its digest, what
// was pushed and its annotations: the index as it is, or, when the image was a
// single manifest (single), that manifest alone, so a single image stays one.
func push(ctx context.Context, rebased v1.ImageIndex, single bool, repo name.Repository, ropts []remote.Option) (name.Digest, Pushed, map[string]string, error) {
	if !single {
		d, err := publish.Index(ctx, rebased, repo, publish.WithRemoteOptions(ropts...))
		if err != nil {
			return name.Digest{}, Pushed{}, nil, err
		}
		im, err := rebased.IndexManifest()
		if err != nil {
			return name.Digest{}, Pushed{}, nil, err
		}
		return d, Pushed{Index: rebased}, im.Annotations, nil
	}
	im, err := rebased.IndexManifest()
	if err != nil {
		return name.Digest{}, Pushed{}, nil, err
	}
	if len(im.Manifests) != 1 {
		return name.Digest{}, Pushed{}, nil, fmt.Errorf("rebasing a single image gave %d manifests", len(im.Manifests))
	}
	img, err := rebased.Image(im.Manifests[0].Digest)
	if err != nil {
		return name.Digest{}, Pushed{}, nil, err
	}
	h, err := img.Digest()
	if err != nil {
		return name.Digest{}, Pushed{}, nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return name.Digest{}, Pushed{}, nil, err
	}
	d := repo.Digest(h.String())
	if err := remote.Write(d, img, ropts...); err != nil {
		return name.Digest{}, Pushed{}, nil, fmt.Errorf("pushing %s: %w", d, err)
	}
	return d, Pushed{Image: img}, m.Annotations, nil
}

// insecure says whether d was parsed for a plain-HTTP registry.
func insecure(d name.Digest) bool {
	return d.Context().Registry.Scheme() == "http"
}
