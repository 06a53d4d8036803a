package build_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/build"
	"github.com/shipkit/shipkit/observe"
)

// copyApp copies testdata/app into a new temporary directory and returns it.
func copyApp(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	require.NoError(t, copyTree(dst))
	return dst
}

func buildApp(t *testing.T, dir, path string, opts ...build.Option) (v1.ImageIndex, error) {
	t.Helper()
	b, err := build.NewGo(opts...)
	require.NoError(t, err)
	return b.Build(context.Background(), build.Source{Dir: dir, Path: path})
}

func TestGoBuildImage(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	events := make(chan observe.Event, 64)
	idx, err := buildApp(t, copyApp(t), ".",
		build.WithPlatforms("linux/arm64", "linux/amd64"),
		build.WithEnv("MODE=prod"),
		build.WithObserver(observe.ObserverFunc(func(e observe.Event) { events <- e })))
	require.NoError(t, err)

	im, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, im.Manifests, 2)
	// Sorted by platform whatever order they were asked in.
	assert.Equal(t, "linux/amd64", im.Manifests[0].Platform.String())
	assert.Equal(t, "linux/arm64", im.Manifests[1].Platform.String())
	assert.Equal(t, "1970-01-01T00:00:00Z", im.Annotations[build.AnnotationCreated])
	assert.NotContains(t, im.Annotations, build.AnnotationBaseName, "scratch has no base name")

	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		require.NoError(t, err)
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		assert.Equal(t, desc.Platform.Architecture, cf.Architecture)
		assert.Equal(t, "linux", cf.OS)
		assert.Equal(t, []string{"/app/app"}, cf.Config.Entrypoint)
		assert.Equal(t, build.DefaultUser, cf.Config.User, "runs as non-root by default")
		assert.Contains(t, cf.Config.Env, "MODE=prod")
		assert.True(t, cf.Created.Time.Equal(time.Unix(0, 0)))

		layers, err := img.Layers()
		require.NoError(t, err)
		require.Len(t, layers, 1)
		hdrs := tarHeaders(t, layers[0])
		require.Equal(t, []string{"app/", "app/app"}, names(hdrs))
		for _, h := range hdrs {
			assert.Zero(t, h.Uid)
			assert.Zero(t, h.Gid)
			assert.True(t, h.ModTime.Equal(time.Unix(0, 0)), "%s mtime %s", h.Name, h.ModTime)
		}
		assert.Equal(t, int64(0o755), hdrs[1].Mode)
	}
	close(events)
	var finished int
	for e := range events {
		if e.Phase == observe.Finished {
			finished++
		}
	}
	assert.Equal(t, 2, finished, "one finished event per platform")
}

func TestGoBuildReproducible(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	a, err := buildApp(t, copyApp(t), ".", build.WithPlatforms("linux/amd64", "linux/arm64"))
	require.NoError(t, err)
	b, err := buildApp(t, copyApp(t), ".", build.WithPlatforms("linux/arm64", "linux/amd64"))
	require.NoError(t, err)
	da, err := a.Digest()
	require.NoError(t, err)
	db, err := b.Digest()
	require.NoError(t, err)
	assert.Equal(t, da, db, "same source in two directories must give the same digest")

	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	c, err := buildApp(t, copyApp(t), ".", build.WithPlatforms("linux/amd64", "linux/arm64"))
	require.NoError(t, err)
	dc, err := c.Digest()
	require.NoError(t, err)
	assert.NotEqual(t, da, dc, "SOURCE_DATE_EPOCH must be recorded")
	im, err := c.IndexManifest()
	require.NoError(t, err)
	assert.Equal(t, "2023-11-14T22:13:20Z", im.Annotations[build.AnnotationCreated])
}

func TestGoBuildOnBase(t *testing.T) {
	base, err := random.Image(512, 2)
	require.NoError(t, err)
	cf, err := base.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/usr/bin", "MODE=dev"}
	base, err = mutate.ConfigFile(base, cf)
	require.NoError(t, err)
	bi, err := build.NewBaseImage("registry.example/base:1", base)
	require.NoError(t, err)
	baseDigest, err := base.Digest()
	require.NoError(t, err)

	idx, err := buildApp(t, copyApp(t), ".", build.WithBase(build.ImageBase(bi)), build.WithEnv("MODE=prod"),
		build.WithUser("1000"))
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, im.Manifests, 1)
	img, err := idx.Image(im.Manifests[0].Digest)
	require.NoError(t, err)
	m, err := img.Manifest()
	require.NoError(t, err)
	assert.Equal(t, "registry.example/base:1", m.Annotations[build.AnnotationBaseName])
	assert.Equal(t, baseDigest.String(), m.Annotations[build.AnnotationBaseDigest])
	layers, err := img.Layers()
	require.NoError(t, err)
	assert.Len(t, layers, 3, "two base layers and the binary")
	got, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, []string{"PATH=/usr/bin", "MODE=prod"}, got.Config.Env, "WithEnv replaces the base's value")
	assert.Equal(t, "1000", got.Config.User)

	_, err = buildApp(t, copyApp(t), ".", build.WithBase(build.ImageBase(bi)), build.WithPlatforms("linux/arm64"))
	assert.ErrorContains(t, err, "registry.example/base:1 is for platform linux/amd64, not linux/arm64")
}

func TestGoBuildBadInput(t *testing.T) {
	dir := copyApp(t)
	tests := []struct {
		name, path string
		opts       []build.Option
		want       []string
	}{
		{"not main", "./lib", nil, []string{"./lib", "example.com/app/lib", "not a main package"}},
		{"compile error", "./broken", nil, []string{"go build ./broken for linux/amd64", "undefined: undefinedFunction"}},
		{"no such package", "./nope", nil, []string{"./nope", "finding Go package"}},
		{"unknown platform", ".", []build.Option{build.WithPlatforms("linux/nosucharch")}, []string{"linux/nosucharch", "cannot build"}},
		{"not linux", ".", []build.Option{build.WithPlatforms("windows/amd64")}, []string{"windows/amd64", "only linux"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := buildApp(t, dir, tt.path, tt.opts...)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.ErrorContains(t, err, w)
			}
		})
	}
	_, err := buildApp(t, filepath.Join(dir, "missing"), ".")
	assert.ErrorContains(t, err, "missing")

	_, err = build.NewGo(build.WithPlatforms("linux"))
	assert.ErrorContains(t, err, `platform "linux"`)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b, err := build.NewGo()
	require.NoError(t, err)
	_, err = b.Build(ctx, build.Source{Dir: dir})
	assert.True(t, errors.Is(err, context.Canceled), "a cancelled build fails with context.Canceled, got %v", err)
}

func tarHeaders(t *testing.T, l v1.Layer) []*tar.Header {
	t.Helper()
	rc, err := l.Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var hdrs []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hdrs
		}
		require.NoError(t, err)
		hdrs = append(hdrs, h)
	}
}

func names(hdrs []*tar.Header) []string {
	var out []string
	for _, h := range hdrs {
		out = append(out, h.Name)
	}
	return out
}

func copyTree(dst string) error { return os.CopyFS(dst, os.DirFS("testdata/app")) }
