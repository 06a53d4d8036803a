package build

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Base is the image a build puts its layers on. Load resolves it once per build;
// implementations exist for a registry reference ([RemoteBase]), an OCI layout
// directory ([LayoutBase]), an image value ([ImageBase]) and the empty image
// ([Scratch]).
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
	label := b.Name
	if label == "" {
		label = "scratch"
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
	ref  string
	opts []remote.Option
}

// RemoteBase is a base image from a registry, e.g. "gcr.io/distroless/static:nonroot".
// The reference is resolved to a digest once per build and recorded. Options are
// passed to go-containerregistry's remote package (auth, transport).
func RemoteBase(ref string, opts ...remote.Option) Base { return remoteBase{ref: ref, opts: opts} }

func (r remoteBase) Load(ctx context.Context) (*BaseImage, error) {
	ref, err := name.ParseReference(r.ref)
	if err != nil {
		return nil, fmt.Errorf("base %q: %w", r.ref, err)
	}
	desc, err := remote.Get(ref, append([]remote.Option{remote.WithContext(ctx)}, r.opts...)...)
	if err != nil {
		return nil, fmt.Errorf("pulling base %s: %w", ref, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", ref, err)
		}
		return &BaseImage{Name: ref.String(), Digest: desc.Digest, index: idx}, nil
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", ref, err)
	}
	return &BaseImage{Name: ref.String(), Digest: desc.Digest, image: img}, nil
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

type imageBase struct{ b *BaseImage }

// ImageBase is a base already in memory, from [NewBaseImage] or [NewBaseIndex].
func ImageBase(b *BaseImage) Base { return imageBase{b} }

func (i imageBase) Load(context.Context) (*BaseImage, error) { return i.b, nil }
