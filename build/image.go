package build

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shipkit/shipkit/observe"
)

// layerSpec is one layer a builder adds: its files and the history line it records.
// The same spec on several platforms is tarred and compressed once per media type.
type layerSpec struct {
	entries   []entry
	createdBy string

	mu    sync.Mutex
	built map[types.MediaType]v1.Layer
}

func newLayerSpec(createdBy string, entries []entry) *layerSpec {
	return &layerSpec{entries: entries, createdBy: createdBy}
}

// layer returns the spec's layer with media type mt, dated created.
func (ls *layerSpec) layer(created time.Time, mt types.MediaType) (v1.Layer, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l, ok := ls.built[mt]; ok {
		return l, nil
	}
	l, err := reproducibleLayer(ls.entries, created, mt)
	if err != nil {
		return nil, err
	}
	if ls.built == nil {
		ls.built = map[types.MediaType]v1.Layer{}
	}
	ls.built[mt] = l
	return l, nil
}

// assemble puts layers on the base image of platform p and writes the image config
// and annotations. entrypoint is the builder's default, used unless the options set
// one.
func (o *options) assemble(base *BaseImage, p v1.Platform, src Source, layers []*layerSpec, entrypoint []string) (v1.Image, error) {
	img, err := base.ForPlatform(p)
	if err != nil {
		return nil, err
	}
	baseDigest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("base %s for %s: digest: %w", base.Name, p, err)
	}
	if img, err = withoutAnnotations(img); err != nil {
		return nil, fmt.Errorf("base %s for %s: %w", base.Name, p, err)
	}
	mt := types.OCILayer
	if m, err := img.MediaType(); err == nil && m == types.DockerManifestSchema2 {
		mt = types.DockerLayer
	}
	for _, ls := range layers {
		layer, err := ls.layer(o.created, mt)
		if err != nil {
			return nil, fmt.Errorf("%s for %s: %w", ls.createdBy, p, err)
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:     layer,
			MediaType: mt,
			History:   v1.History{Author: "shipkit", Created: v1.Time{Time: o.created}, CreatedBy: ls.createdBy},
		})
		if err != nil {
			return nil, fmt.Errorf("%s for %s: appending layer: %w", ls.createdBy, p, err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image for %s: reading config: %w", p, err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant, cf.OSVersion = p.OS, p.Architecture, p.Variant, p.OSVersion
	cf.Created = v1.Time{Time: o.created}
	cf.Author = ""
	c := &cf.Config
	if o.entrypoint != nil {
		entrypoint = o.entrypoint
	}
	if entrypoint != nil {
		c.Entrypoint, c.Cmd = entrypoint, nil
	}
	if o.cmd != nil {
		c.Cmd = o.cmd
	}
	if o.workdir != "" {
		c.WorkingDir = o.workdir
	}
	c.User = o.user
	c.Env = setEnv(c.Env, o.env)
	if len(o.labels) > 0 {
		c.Labels = merge(c.Labels, o.labels)
	}
	for _, port := range o.ports {
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		c.ExposedPorts[port] = struct{}{}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image for %s: writing config: %w", p, err)
	}
	ann := o.imageAnnotations(src, base)
	if base.Name != "" {
		ann[AnnotationBaseDigest] = baseDigest.String()
	}
	out, ok := mutate.Annotations(img, ann).(v1.Image)
	if !ok {
		return nil, fmt.Errorf("image for %s: annotating: not an image", p)
	}
	return out, nil
}

// imageAnnotations returns the annotations every manifest of a build carries.
func (o *options) imageAnnotations(src Source, base *BaseImage) map[string]string {
	ann := merge(nil, o.annotations)
	if base.Name != "" {
		ann[AnnotationBaseName] = base.Name
	}
	if src.Repository != "" {
		ann[AnnotationSource] = src.Repository
	}
	if src.Revision != "" {
		ann[AnnotationRevision] = src.Revision
	}
	ann[AnnotationCreated] = o.created.Format(time.RFC3339)
	return ann
}

// index puts one image per platform (images[i] is for o.platforms[i]) into an OCI
// index, sorted by platform so the order of the options does not change the digest.
func (o *options) index(images []v1.Image, base *BaseImage, src Source) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	adds := make([]mutate.IndexAddendum, len(images))
	for i, img := range images {
		p := o.platforms[i]
		adds[i] = mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}}
	}
	sort.SliceStable(adds, func(i, j int) bool {
		return adds[i].Descriptor.Platform.String() < adds[j].Descriptor.Platform.String()
	})
	idx = mutate.AppendManifests(idx, adds...)
	ann := o.imageAnnotations(src, base)
	if base.Name != "" {
		ann[AnnotationBaseDigest] = base.Digest.String()
	}
	out, ok := mutate.Annotations(idx, ann).(v1.ImageIndex)
	if !ok {
		return nil, fmt.Errorf("annotating index: not an index")
	}
	return out, nil
}

// forEachPlatform runs f for every platform, o.jobs at a time, and returns the
// images in the order of o.platforms. The first failure cancels the other platforms'
// work and is the error returned. It reports each platform's step to the observer.
func (o *options) forEachPlatform(ctx context.Context, step string, f func(context.Context, v1.Platform) (v1.Image, error)) ([]v1.Image, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	images := make([]v1.Image, len(o.platforms))
	sem := make(chan struct{}, o.jobs)
	var wg sync.WaitGroup
	for i, p := range o.platforms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				return
			}
			if ctx.Err() != nil {
				return
			}
			s := observe.StartStep(o.observer, observe.StageBuild, step+" "+p.String(), 0, "")
			img, err := f(ctx, p)
			if err != nil {
				cancel(s.Fail(err)) // only the first cause is kept
				return
			}
			images[i] = img
			s.Finish("")
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return images, nil
}

// withoutAnnotations returns img with its manifest's annotations removed: a build
// starts from a base's layers and config, not from its claims (a base's
// org.opencontainers.image.source is not the built image's source).
func withoutAnnotations(img v1.Image) (v1.Image, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	if len(m.Annotations) == 0 {
		return img, nil
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	out := mutate.ConfigMediaType(mutate.MediaType(empty.Image, m.MediaType), m.Config.MediaType)
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		d := m.Layers[i]
		adds[i] = mutate.Addendum{Layer: l, MediaType: d.MediaType, Annotations: d.Annotations, URLs: d.URLs}
	}
	if out, err = mutate.Append(out, adds...); err != nil {
		return nil, err
	}
	return mutate.ConfigFile(out, cf)
}
