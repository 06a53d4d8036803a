package build

import (
	"cmp"
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shipkit/shipkit/internal/oci"
)

// Base is the image a build puts its layers on. Load resolves it once per build;
// implementations exist for a registry reference ([RemoteBase]), an OCI layout
// directory ([LayoutBase]), an image value ([ImageBase]), the default base written
// in process ([Static]) and the empty image ([Scratch]).
type Base interface {
	Load(ctx context.Context) (*BaseImage, error)
}

// BaseImage is a resolved base: an index (one image per platform) or one image.
type BaseImage struct {
	// Name is recorded as the org.opencontainers.image.base.name annotation; it is
	// empty for scratch.
	Name string
	// Digest is what Name resolved to, the index's or the image's.
	Digest v1.Hash

	index v1.ImageIndex
	image v1.Image
	// forPlatform makes the image of any platform, for a base that is the same
	// layers on every platform ([Static]); label names it in errors.
	forPlatform func(v1.Platform) (v1.Image, error)
	label       string
}

// NewBaseIndex returns a base of one image per platform.
func NewBaseIndex(name string, idx v1.ImageIndex) (*BaseImage, error) {
	d, err := idx.Digest()
	if err != nil {
		return nil, fmt.Errorf("base %s: digest: %w", name, err)
	}
	return &BaseImage{Name: name, Digest: d, index: idx}, nil
}

// NewBaseImage returns a base of one image, for its own platform only.
func NewBaseImage(name string, img v1.Image) (*BaseImage, error) {
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("base %s: digest: %w", name, err)
	}
	return &BaseImage{Name: name, Digest: d, image: img}, nil
}

// ForPlatform returns the base image for one platform: the matching image of an
// index, or the single image when its platform fits.
func (b *BaseImage) ForPlatform(p v1.Platform) (v1.Image, error) {
	if b.forPlatform != nil {
		return b.forPlatform(p)
	}
	label := b.Name
	if label == "" {
		label = cmp.Or(b.label, "scratch")
	}
	if b.index == nil && b.image == nil {
		return nil, fmt.Errorf("base %s: no image (use NewBaseImage or NewBaseIndex)", label)
	}
	if b.index != nil {
		im, err := b.index.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("base %s: reading index: %w", label, err)
		}
		for _, desc := range im.Manifests {
			if desc.Platform != nil && desc.Platform.Satisfies(p) && desc.MediaType.IsImage() {
				img, err := b.index.Image(desc.Digest)
				if err != nil {
					return nil, fmt.Errorf("base %s: image for %s: %w", label, p, err)
				}
				return img, nil
			}
		}
		return nil, fmt.Errorf("base %s has no image for platform %s", label, p)
	}
	cf, err := b.image.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("base %s: reading config: %w", label, err)
	}
	if cf.OS != "" && !cf.Platform().Satisfies(p) {
		return nil, fmt.Errorf("base %s is for platform %s, not %s", label, cf.Platform(), p)
	}
	return b.image, nil
}

type scratch struct{}

// Scratch is the empty base: the image holds only what the build adds.
func Scratch() Base { return scratch{} }

func (scratch) Load(context.Context) (*BaseImage, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return &BaseImage{image: img}, nil
}

type remoteBase struct {
	raw  string
	ref  name.Reference
	opts []remote.Option
}

// RemoteBase is a base image from a registry, e.g. "gcr.io/distroless/static:nonroot".
// The reference is resolved to a digest once per build and recorded. Options are
// passed to go-containerregistry's remote package (auth, transport); without any, the
// credentials come from authn.DefaultKeychain, as for publish.Index.
func RemoteBase(ref string, opts ...remote.Option) Base { return remoteBase{raw: ref, opts: opts} }

// RemoteBaseRef is [RemoteBase] for a parsed reference, e.g. one parsed with
// name.Insecure for a plain-HTTP registry.
func RemoteBaseRef(ref name.Reference, opts ...remote.Option) Base {
	return remoteBase{raw: ref.String(), ref: ref, opts: opts}
}

// remoteOptions adds the context, and the default keychain when the caller gave no
// options (go-containerregistry refuses a keychain next to an explicit authenticator).
func remoteOptions(ctx context.Context, opts []remote.Option) []remote.Option {
	if len(opts) == 0 {
		opts = []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	}
	return append([]remote.Option{remote.WithContext(ctx)}, opts...)
}

func (r remoteBase) Load(ctx context.Context) (*BaseImage, error) {
	ref := r.ref
	if ref == nil {
		var err error
		if ref, err = name.ParseReference(r.raw); err != nil {
			return nil, fmt.Errorf("base %q: %w", r.raw, err)
		}
	}
	a, err := oci.Get(ref, remoteOptions(ctx, r.opts)...)
	if err != nil {
		return nil, fmt.Errorf("pulling base %s: %w", ref, err)
	}
	return &BaseImage{Name: ref.String(), Digest: a.Digest, index: a.Index, image: a.Image}, nil
}

type layoutBase struct{ dir, name string }

// LayoutBase is a base image from an OCI image layout directory. The layout must
// hold one image or index, or only platform images (then it is their index); name
// is recorded as the base name.
func LayoutBase(dir, name string) Base { return layoutBase{dir: dir, name: name} }

func (l layoutBase) Load(context.Context) (*BaseImage, error) {
	idx, err := layout.ImageIndexFromPath(l.dir)
	if err != nil {
		return nil, fmt.Errorf("base layout %s: %w", l.dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("base layout %s: %w", l.dir, err)
	}
	if len(im.Manifests) == 1 {
		d := im.Manifests[0]
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("base layout %s: %w", l.dir, err)
			}
			return NewBaseIndex(l.name, child)
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("base layout %s: %w", l.dir, err)
			}
			return NewBaseImage(l.name, img)
		}
	}
	if len(im.Manifests) == 0 {
		return nil, fmt.Errorf("base layout %s holds no image", l.dir)
	}
	return NewBaseIndex(l.name, idx)
}

type valueBase struct {
	name  string
	image v1.Image
	index v1.ImageIndex
}

// ImageBase is a base image already in memory, for its own platform only; name is
// recorded as the base name.
func ImageBase(name string, img v1.Image) Base { return valueBase{name: name, image: img} }

// IndexBase is a base index already in memory, one image per platform; name is
// recorded as the base name.
func IndexBase(name string, idx v1.ImageIndex) Base { return valueBase{name: name, index: idx} }

func (v valueBase) Load(context.Context) (*BaseImage, error) {
	switch {
	case v.index != nil:
		return NewBaseIndex(v.name, v.index)
	case v.image != nil:
		return NewBaseImage(v.name, v.image)
	}
	return nil, fmt.Errorf("base %q: nil image", v.name)
}
