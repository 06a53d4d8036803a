package build_test

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/build"
)

// pushBase pushes a two-platform base index with random layers under tag and
// returns it.
func pushBase(t *testing.T, tag name.Tag, opts ...remote.Option) v1.ImageIndex {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(256, 2)
		require.NoError(t, err)
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		img, err = mutate.ConfigFile(img, cf)
		require.NoError(t, err)
		img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	require.NoError(t, remote.WriteIndex(tag, idx, opts...))
	return idx
}

func TestRebaseOntoPatchedBase(t *testing.T) {
	ctx := context.Background()
	repo := newRegistry(t)
	baseTag := repo.Registry.Repo("base").Tag("1")
	oldBase := pushBase(t, baseTag)
	oldDigest, err := oldBase.Digest()
	require.NoError(t, err)

	b, err := build.NewFiles([]build.Layer{{Name: "app", Files: []build.File{{Src: "app.jar", Dst: "/app/app.jar"}}}},
		build.WithBase(build.RemoteBase(baseTag.String())), build.WithPlatforms("linux/amd64", "linux/arm64"),
		build.WithEntrypoint("java", "-jar", "/app/app.jar"))
	require.NoError(t, err)
	idx, err := b.Build(ctx, build.Source{Dir: javaContext(t, "v1")})
	require.NoError(t, err)

	status, err := build.CheckBase(ctx, idx)
	require.NoError(t, err)
	assert.False(t, status.Stale)
	assert.Equal(t, oldDigest, status.Built)

	// The base tag moves to a patched build.
	patched := pushBase(t, baseTag)
	patchedDigest, err := patched.Digest()
	require.NoError(t, err)
	status, err = build.CheckBase(ctx, idx)
	require.NoError(t, err)
	assert.True(t, status.Stale)
	assert.Equal(t, patchedDigest, status.Current)

	rebased, err := build.Rebase(ctx, idx, build.RemoteBase(baseTag.String()))
	require.NoError(t, err)
	status, err = build.CheckBase(ctx, rebased)
	require.NoError(t, err)
	assert.False(t, status.Stale, "the rebased index names the patched base")

	im, err := rebased.IndexManifest()
	require.NoError(t, err)
	require.Len(t, im.Manifests, 2)
	for _, desc := range im.Manifests {
		img, err := rebased.Image(desc.Digest)
		require.NoError(t, err)
		newBaseImg := platformImage(t, patched, *desc.Platform)
		wantBaseLayers, err := newBaseImg.Layers()
		require.NoError(t, err)
		layers, err := img.Layers()
		require.NoError(t, err)
		require.Len(t, layers, len(wantBaseLayers)+1)
		for i := range wantBaseLayers {
			want, _ := wantBaseLayers[i].Digest()
			got, _ := layers[i].Digest()
			assert.Equal(t, want, got, "layer %d comes from the patched base", i)
		}
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		assert.Equal(t, []string{"java", "-jar", "/app/app.jar"}, cf.Config.Entrypoint)
		assert.Equal(t, desc.Platform.Architecture, cf.Architecture)
		mt, err := img.MediaType()
		require.NoError(t, err)
		assert.Equal(t, types.OCIManifestSchema1, mt, "mutate.Rebase's Docker media type is undone")
		m, err := img.Manifest()
		require.NoError(t, err)
		wantDigest, _ := newBaseImg.Digest()
		assert.Equal(t, wantDigest.String(), m.Annotations[build.AnnotationBaseDigest])
	}

	// An image that was not built on the given old base is refused.
	other := build.IndexBase("other", pushBase(t, repo.Registry.Repo("other").Tag("1")))
	_, err = build.Rebase(ctx, idx, build.RemoteBase(baseTag.String()), build.WithOldBase(other))
	assert.ErrorContains(t, err, "not based on")
}

func TestCheckBaseBuiltIn(t *testing.T) {
	idx, err := buildApp(t, copyApp(t), ".")
	require.NoError(t, err)
	_, err = build.CheckBase(context.Background(), idx)
	assert.ErrorContains(t, err, "built on Scratch or Static")
}

// TestRebaseFromStatic: an image built on the default base records no base name, so
// Rebase asks for WithOldBase; given Static, the image moves onto another base and
// keeps its binary layer.
func TestRebaseFromStatic(t *testing.T) {
	ctx := context.Background()
	idx, err := buildApp(t, copyApp(t), ".", build.WithPlatforms("linux/amd64", "linux/arm64"))
	require.NoError(t, err)
	repo := newRegistry(t)
	newBase := pushBase(t, repo.Registry.Repo("base").Tag("2"))
	_, err = build.Rebase(ctx, idx, build.IndexBase("example.com/base:2", newBase))
	assert.ErrorContains(t, err, "use WithOldBase")
	_, err = build.Rebase(ctx, idx, build.IndexBase("example.com/base:2", newBase), build.WithOldBase(nil))
	assert.ErrorContains(t, err, "WithOldBase: nil base")

	rebased, err := build.Rebase(ctx, idx, build.IndexBase("example.com/base:2", newBase), build.WithOldBase(build.Static()))
	require.NoError(t, err)
	im, err := rebased.IndexManifest()
	require.NoError(t, err)
	assert.Equal(t, "example.com/base:2", im.Annotations[build.AnnotationBaseName])
	for _, desc := range im.Manifests {
		img, err := rebased.Image(desc.Digest)
		require.NoError(t, err)
		layers, err := img.Layers()
		require.NoError(t, err)
		require.Len(t, layers, 3, "two layers of the new base and the binary")
		assert.Equal(t, []string{"app/", "app/app"}, names(tarHeaders(t, layers[2])))
	}
}

func platformImage(t *testing.T, idx v1.ImageIndex, p v1.Platform) v1.Image {
	t.Helper()
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	for _, d := range im.Manifests {
		if d.Platform.Satisfies(p) {
			img, err := idx.Image(d.Digest)
			require.NoError(t, err)
			return img
		}
	}
	t.Fatalf("no image for %s", p)
	return nil
}
