package build_test

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/build"
)

// TestGoBuildRemoteBaseReadAfterBuild: the images of a build on a registry base
// are read after Build returns (a push, an SBOM), and a registry base reads its
// layers lazily with the context it was loaded with; that context must not end
// with Build. (The base resolved alongside the compiles once used a context Build
// cancelled on return, and the main job's SBOM stage failed with "context
// canceled" fetching the base's layer.)
func TestGoBuildRemoteBaseReadAfterBuild(t *testing.T) {
	repo := newRegistry(t)
	baseTag := repo.Registry.Repo("base").Tag("1")
	pushBase(t, baseTag)
	idx, err := buildApp(t, copyApp(t), ".", build.WithBase(build.RemoteBase(baseTag.String())),
		build.WithPlatforms("linux/amd64"))
	require.NoError(t, err)

	im, err := idx.IndexManifest()
	require.NoError(t, err)
	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		require.NoError(t, err)
		layers, err := img.Layers()
		require.NoError(t, err)
		require.Greater(t, len(layers), 1, "the base's layers and the app's")
		for _, l := range layers {
			rc, err := l.Compressed()
			require.NoError(t, err)
			_, err = io.Copy(io.Discard, rc)
			require.NoError(t, err, "reading a layer after Build returned")
			require.NoError(t, rc.Close())
		}
	}
}
