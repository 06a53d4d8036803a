package build_test

import (
	"context"
	"os"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/build"
	"github.com/shipkit/shipkit/build/publish"
	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/registry"
)

var distribution = testbed.Lazy[*registry.Distribution]{Start: registry.Start}

func TestMain(m *testing.M) {
	code := m.Run()
	distribution.Stop()
	os.Exit(code)
}

// TestBuildPushPullDistribution builds on a base pulled from the CNCF distribution
// registry (htpasswd auth, TLS from a private CA), pushes there, pulls the result back
// by digest and reads what users rely on.
func TestBuildPushPullDistribution(t *testing.T) {
	reg := distribution.Get(t)
	ctx := context.Background()
	baseTag, err := name.NewTag(reg.Host + "/base/static:1")
	require.NoError(t, err)
	base := pushBase(t, baseTag, reg.RemoteOptions()...)
	baseDigest, err := base.Digest()
	require.NoError(t, err)

	b, err := build.NewGo(build.WithPlatforms("linux/amd64", "linux/arm64"),
		build.WithBase(build.RemoteBase(baseTag.String(), reg.RemoteOptions()...)))
	require.NoError(t, err)
	idx, err := b.Build(ctx, build.Source{Dir: copyApp(t), Repository: "https://example.com/app.git", Revision: "abc123"})
	require.NoError(t, err)

	repo, err := name.NewRepository(reg.Host + "/team/app")
	require.NoError(t, err)
	_, err = publish.Index(ctx, idx, repo, publish.WithTransport(reg.Transport), publish.WithKeychain(authn.NewMultiKeychain()))
	require.Error(t, err, "a push without credentials must fail")

	digest, err := publish.Index(ctx, idx, repo, publish.WithTransport(reg.Transport), publish.WithKeychain(reg.Keychain()))
	require.NoError(t, err)

	pulled, err := remote.Index(digest, reg.RemoteOptions()...)
	require.NoError(t, err)
	im, err := pulled.IndexManifest()
	require.NoError(t, err)
	assert.Equal(t, baseTag.String(), im.Annotations[build.AnnotationBaseName])
	assert.Equal(t, baseDigest.String(), im.Annotations[build.AnnotationBaseDigest])
	assert.Equal(t, "https://example.com/app.git", im.Annotations[build.AnnotationSource])
	assert.Equal(t, "abc123", im.Annotations[build.AnnotationRevision])
	require.Len(t, im.Manifests, 2)

	for i, arch := range []string{"amd64", "arm64"} {
		desc := im.Manifests[i]
		assert.Equal(t, "linux/"+arch, desc.Platform.String())
		img, err := pulled.Image(desc.Digest)
		require.NoError(t, err)
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		assert.Equal(t, arch, cf.Architecture)
		assert.Equal(t, []string{"/app/app"}, cf.Config.Entrypoint)
		assert.Equal(t, build.DefaultUser, cf.Config.User)
		layers, err := img.Layers()
		require.NoError(t, err)
		require.Len(t, layers, 3, "two base layers and the binary")
		assert.Equal(t, []string{"app/", "app/app"}, names(tarHeaders(t, layers[2])))
		m, err := img.Manifest()
		require.NoError(t, err)
		baseImg := platformImage(t, base, *desc.Platform)
		want, err := baseImg.Digest()
		require.NoError(t, err)
		assert.Equal(t, want.String(), m.Annotations[build.AnnotationBaseDigest], "the image records its platform's base")
	}

	// A base that cannot be pulled (no credentials) is a clear error naming it.
	noAuth, err := build.NewGo(build.WithBase(build.RemoteBase(baseTag.String(), remote.WithTransport(reg.Transport))))
	require.NoError(t, err)
	_, err = noAuth.Build(ctx, build.Source{Dir: copyApp(t)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pulling base "+baseTag.String())
	assert.NotContains(t, err.Error(), reg.Password)
}
