package build

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shipkit/shipkit/internal/option"
)

// RebaseOption configures [Rebase]. An option given an invalid value makes Rebase
// fail before it loads anything.
type RebaseOption func(*rebaseOptions) error

type rebaseOptions struct {
	oldBase Base
	remote  []remote.Option
}

// WithOldBase gives the base the images were built on, instead of fetching it from
// the registry named by their base annotations: needed for images built on
// [Scratch] or [Static], which record no base name.
func WithOldBase(b Base) RebaseOption {
	return func(o *rebaseOptions) error {
		if b == nil {
			return fmt.Errorf("WithOldBase: nil base")
		}
		o.oldBase = b
		return nil
	}
}

// WithRemoteOptions passes options (auth, transport) to the registry requests that
// fetch the old base named by the images' annotations (default:
// authn.DefaultKeychain). The new base carries its own, e.g. [RemoteBase]'s.
func WithRemoteOptions(opts ...remote.Option) RebaseOption {
	return func(o *rebaseOptions) error { o.remote = append(o.remote, opts...); return nil }
}

// Rebase moves every image of idx onto newBase, e.g. a base rebuilt with security
// fixes: the layers the build added are put on newBase's image for the same
// platform, the config and creation time are kept, and the base annotations now
// name the new base. The old base is found from the images' base annotations unless
// [WithOldBase] gives it; an image that does not start with the old base's layers is
// refused. Nothing is pushed: publish the result.
func Rebase(ctx context.Context, idx v1.ImageIndex, newBase Base, opts ...RebaseOption) (v1.ImageIndex, error) {
	o := &rebaseOptions{}
	var bad option.List
	for _, opt := range opts {
		bad.Add(opt(o))
	}
	if err := bad.Err("rebase"); err != nil {
		return nil, err
	}
	nb, err := newBase.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("rebase: new base: %w", err)
	}
	var ob *BaseImage
	if o.oldBase != nil {
		if ob, err = o.oldBase.Load(ctx); err != nil {
			return nil, fmt.Errorf("rebase: old base: %w", err)
		}
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("rebase: reading index: %w", err)
	}
	out := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, desc := range im.Manifests {
		if desc.Platform == nil {
			return nil, fmt.Errorf("rebase: image %s has no platform in the index", desc.Digest)
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("rebase: image for %s: %w", desc.Platform, err)
		}
		rebased, err := rebaseImage(ctx, img, *desc.Platform, ob, nb, o)
		if err != nil {
			return nil, fmt.Errorf("rebase: image for %s: %w", desc.Platform, err)
		}
		out = mutate.AppendManifests(out, mutate.IndexAddendum{Add: rebased, Descriptor: v1.Descriptor{Platform: desc.Platform}})
	}
	ann := withBase(im.Annotations, nb.Name, nb.Digest)
	res, ok := mutate.Annotations(out, ann).(v1.ImageIndex)
	if !ok {
		return nil, fmt.Errorf("rebase: annotating index: not an index")
	}
	return res, nil
}

func rebaseImage(ctx context.Context, img v1.Image, p v1.Platform, ob, nb *BaseImage, o *rebaseOptions) (v1.Image, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	var oldImg v1.Image
	if ob != nil {
		if oldImg, err = ob.ForPlatform(p); err != nil {
			return nil, err
		}
	} else {
		baseName, baseDigest := m.Annotations[AnnotationBaseName], m.Annotations[AnnotationBaseDigest]
		if baseName == "" || baseDigest == "" {
			return nil, fmt.Errorf("no %s and %s annotations to find the old base by; use WithOldBase", AnnotationBaseName, AnnotationBaseDigest)
		}
		ref, err := name.ParseReference(baseName)
		if err != nil {
			return nil, fmt.Errorf("old base %q: %w", baseName, err)
		}
		d := ref.Context().Digest(baseDigest)
		if oldImg, err = remote.Image(d, remoteOptions(ctx, o.remote)...); err != nil {
			return nil, fmt.Errorf("pulling old base %s: %w", d, err)
		}
	}
	newImg, err := nb.ForPlatform(p)
	if err != nil {
		return nil, err
	}
	newDigest, err := newImg.Digest()
	if err != nil {
		return nil, err
	}
	orig, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	rebased, err := mutate.Rebase(img, oldImg, newImg)
	if err != nil {
		return nil, err
	}
	// mutate.Rebase starts from an empty Docker image: restore what the build set.
	cf, err := rebased.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created, cf.Variant = orig.Created, p.Variant
	if rebased, err = mutate.ConfigFile(rebased, cf); err != nil {
		return nil, err
	}
	rebased = mutate.MediaType(rebased, m.MediaType)
	rebased = mutate.ConfigMediaType(rebased, m.Config.MediaType)
	res, ok := mutate.Annotations(rebased, withBase(m.Annotations, nb.Name, newDigest)).(v1.Image)
	if !ok {
		return nil, fmt.Errorf("annotating: not an image")
	}
	return res, nil
}

func withBase(ann map[string]string, baseName string, digest v1.Hash) map[string]string {
	out := merge(nil, ann)
	delete(out, AnnotationBaseName)
	delete(out, AnnotationBaseDigest)
	if baseName != "" {
		out[AnnotationBaseName] = baseName
		out[AnnotationBaseDigest] = digest.String()
	}
	return out
}

// BaseStatus says whether the base an image was built on has moved on.
type BaseStatus struct {
	// Name is the base reference recorded at build time, e.g. "cgr.dev/chainguard/static:latest".
	Name string
	// Built is the digest Name resolved to at build time; Current what it resolves to now.
	Built, Current v1.Hash
	// Stale is true when Current differs from Built: rebuild or [Rebase].
	Stale bool
}

// CheckBase resolves the base name recorded on idx and reports whether it now
// points at another digest than the one the images were built on. Options are
// passed to go-containerregistry's remote package (default: authn.DefaultKeychain).
func CheckBase(ctx context.Context, idx v1.ImageIndex, opts ...remote.Option) (*BaseStatus, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("checking base: reading index: %w", err)
	}
	baseName, built := im.Annotations[AnnotationBaseName], im.Annotations[AnnotationBaseDigest]
	if baseName == "" || built == "" {
		return nil, fmt.Errorf("checking base: the index has no %s and %s annotations (built on Scratch or Static, which record none?)", AnnotationBaseName, AnnotationBaseDigest)
	}
	builtHash, err := v1.NewHash(built)
	if err != nil {
		return nil, fmt.Errorf("checking base: %s %q: %w", AnnotationBaseDigest, built, err)
	}
	ref, err := name.ParseReference(baseName)
	if err != nil {
		return nil, fmt.Errorf("checking base %q: %w", baseName, err)
	}
	desc, err := remote.Head(ref, remoteOptions(ctx, opts)...)
	if err != nil {
		return nil, fmt.Errorf("checking base: resolving %s: %w", ref, err)
	}
	return &BaseStatus{Name: baseName, Built: builtHash, Current: desc.Digest, Stale: desc.Digest != builtHash}, nil
}
