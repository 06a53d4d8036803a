package build_test

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/build"
	"github.com/shipkit/shipkit/internal/testbed/registry"
)

// newRegistry serves go-containerregistry's registry in process and returns a
// repository in it.
func newRegistry(t *testing.T) name.Repository {
	t.Helper()
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	repo, err := name.NewRepository(host+"/team/app", name.Insecure)
	require.NoError(t, err)
	return repo
}

func TestLayoutBase(t *testing.T) {
	repo := newRegistry(t)
	base := pushBase(t, repo.Tag("base")) // a two-platform index
	dir := t.TempDir()
	_, err := layout.Write(dir, mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: base}))
	require.NoError(t, err)

	idx, err := buildApp(t, copyApp(t), ".", build.WithBase(build.LayoutBase(dir, "example.com/base:1")),
		build.WithPlatforms("linux/amd64", "linux/arm64"))
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	baseDigest, err := base.Digest()
	require.NoError(t, err)
	assert.Equal(t, "example.com/base:1", im.Annotations[build.AnnotationBaseName])
	assert.Equal(t, baseDigest.String(), im.Annotations[build.AnnotationBaseDigest])
	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		require.NoError(t, err)
		layers, err := img.Layers()
		require.NoError(t, err)
		assert.Len(t, layers, 3, "%s: two base layers and the binary", desc.Platform)
	}

	_, err = build.LayoutBase(t.TempDir(), "empty").Load(context.Background())
	assert.ErrorContains(t, err, "base layout")

	single, err := random.Image(64, 1)
	require.NoError(t, err)
	one := t.TempDir()
	_, err = layout.Write(one, mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: single}))
	require.NoError(t, err)
	b, err := build.LayoutBase(one, "single").Load(context.Background())
	require.NoError(t, err)
	want, err := single.Digest()
	require.NoError(t, err)
	assert.Equal(t, want, b.Digest, "a layout holding one image is that image")
}
