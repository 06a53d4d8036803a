package build_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/build"
)

// javaContext writes a Spring Boot-like context: dependency JARs, the app JAR, a
// start script, and a symlink to the JAR inside the context.
func javaContext(t *testing.T, appJar string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), mode))
		require.NoError(t, os.Chmod(p, mode)) // whatever the umask
	}
	write("lib/spring-core.jar", "spring", 0o600)
	write("lib/jackson.jar", "jackson", 0o664)
	write("app.jar", appJar, 0o644)
	write("run.sh", "#!/bin/sh\nexec java -jar /app/app.jar\n", 0o700)
	require.NoError(t, os.Symlink("app.jar", filepath.Join(dir, "current.jar")))
	return dir
}

var javaLayers = []build.Layer{
	{Name: "dependencies", Files: []build.File{{Src: "lib", Dst: "/app/lib"}}},
	{Name: "application", Files: []build.File{
		{Src: "app.jar", Dst: "/app/app.jar"},
		{Src: "current.jar", Dst: "/app/current.jar"},
		{Src: "run.sh", Dst: "/app/run.sh"},
	}},
}

func buildFiles(t *testing.T, dir string, layers []build.Layer, opts ...build.Option) (v1.Image, error) {
	t.Helper()
	// On scratch, so that the image's layers are the builder's; the default base is
	// TestFilesBuilderSharesLayersAcrossPlatforms's.
	b, err := build.NewFiles(layers, append([]build.Option{build.WithBase(build.Scratch())}, opts...)...)
	require.NoError(t, err)
	idx, err := b.Build(context.Background(), build.Source{Dir: dir})
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, im.Manifests, 1)
	return idx.Image(im.Manifests[0].Digest)
}

func TestFilesBuilder(t *testing.T) {
	img, err := buildFiles(t, javaContext(t, "v1"), javaLayers,
		build.WithEntrypoint("/app/run.sh"), build.WithCmd("--server.port=8080"), build.WithWorkdir("/app"),
		build.WithPorts("8080", "9090/udp"), build.WithLabels(map[string]string{"team": "shop"}),
		build.WithEnv("JAVA_OPTS=-Xmx256m"))
	require.NoError(t, err)

	cf, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, []string{"/app/run.sh"}, cf.Config.Entrypoint)
	assert.Equal(t, []string{"--server.port=8080"}, cf.Config.Cmd)
	assert.Equal(t, "/app", cf.Config.WorkingDir)
	assert.Equal(t, build.DefaultUser, cf.Config.User)
	assert.Equal(t, map[string]struct{}{"8080/tcp": {}, "9090/udp": {}}, cf.Config.ExposedPorts)
	assert.Equal(t, "shop", cf.Config.Labels["team"])
	assert.Contains(t, cf.Config.Env, "JAVA_OPTS=-Xmx256m")
	require.Len(t, cf.History, 2)
	assert.Equal(t, "shipkit build files: dependencies", cf.History[0].CreatedBy)

	layers, err := img.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 2)
	deps := tarHeaders(t, layers[0])
	assert.Equal(t, []string{"app/", "app/lib/", "app/lib/jackson.jar", "app/lib/spring-core.jar"}, names(deps))
	assert.Equal(t, int64(0o644), deps[2].Mode, "modes are normalized, not the host's 0664")
	assert.Equal(t, int64(0o644), deps[3].Mode, "modes are normalized, not the host's 0600")
	app := tarHeaders(t, layers[1])
	assert.Equal(t, []string{"app/", "app/app.jar", "app/current.jar", "app/run.sh"}, names(app))
	assert.Equal(t, int64(0o755), app[3].Mode)
	assert.Equal(t, app[1].Size, app[2].Size, "a symlink inside the context is copied as the file it points to")
}

func TestFilesBuilderLayersChangeAlone(t *testing.T) {
	v1img, err := buildFiles(t, javaContext(t, "v1"), javaLayers)
	require.NoError(t, err)
	v2img, err := buildFiles(t, javaContext(t, "v2"), javaLayers)
	require.NoError(t, err)
	again, err := buildFiles(t, javaContext(t, "v1"), javaLayers)
	require.NoError(t, err)

	l1, err := v1img.Layers()
	require.NoError(t, err)
	l2, err := v2img.Layers()
	require.NoError(t, err)
	d1, _ := l1[0].Digest()
	d2, _ := l2[0].Digest()
	assert.Equal(t, d1, d2, "the dependency layer does not change when only the app changes")
	a1, _ := l1[1].Digest()
	a2, _ := l2[1].Digest()
	assert.NotEqual(t, a1, a2)

	dv1, err := v1img.Digest()
	require.NoError(t, err)
	dagain, err := again.Digest()
	require.NoError(t, err)
	assert.Equal(t, dv1, dagain, "same files in another directory give the same digest")
}

func TestFilesBuilderRefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("s3cr3t"), 0o600))
	dir := javaContext(t, "v1")
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "escape")))
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "lib", "escape-dir")))
	require.NoError(t, os.Symlink("../../"+filepath.Base(outside), filepath.Join(dir, "rel-escape")))

	tests := []struct {
		name string
		file build.File
		want string
	}{
		{"dot dot", build.File{Src: "../" + filepath.Base(outside) + "/secret", Dst: "/x"}, "outside the context dir"},
		{"absolute", build.File{Src: filepath.Join(outside, "secret"), Dst: "/x"}, "outside the context dir"},
		{"absolute symlink", build.File{Src: "escape", Dst: "/x"}, "outside the context dir"},
		{"relative symlink", build.File{Src: "rel-escape", Dst: "/x"}, "outside the context dir"},
		{"symlink in a directory", build.File{Src: "lib", Dst: "/x"}, `"lib/escape-dir": leads outside the context dir`},
		{"missing", build.File{Src: "nope.jar", Dst: "/x"}, "nope.jar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := buildFiles(t, dir, []build.Layer{{Name: "l", Files: []build.File{tt.file}}})
			require.Error(t, err)
			assert.ErrorContains(t, err, tt.want)
			assert.NotContains(t, err.Error(), "s3cr3t")
		})
	}

	_, err := build.NewFiles([]build.Layer{{Name: "l", Files: []build.File{{Src: "a", Dst: "relative"}}}})
	assert.ErrorContains(t, err, `"relative" is not an absolute path`)
	_, err = build.NewFiles(nil)
	assert.ErrorContains(t, err, "no layers")
	_, err = build.NewFiles(javaLayers, build.WithPorts("http"))
	assert.ErrorContains(t, err, `port "http"`)
	_, err = build.NewFiles(javaLayers, build.WithLdflags("-s"), build.WithBinaryCache(t.TempDir()))
	assert.ErrorContains(t, err, "WithLdflags, WithBinaryCache apply to the Go builder only")
	b, err := build.NewFiles(javaLayers)
	require.NoError(t, err)
	_, err = b.Build(context.Background(), build.Source{Dir: dir, Path: "./cmd"})
	assert.ErrorContains(t, err, "Source.Path")
}

func TestFilesBuilderSharesLayersAcrossPlatforms(t *testing.T) {
	b, err := build.NewFiles(javaLayers, build.WithPlatforms("linux/amd64", "linux/arm64"))
	require.NoError(t, err)
	idx, err := b.Build(context.Background(), build.Source{Dir: javaContext(t, "v1")})
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, im.Manifests, 2)
	var digests [][]v1.Hash
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		require.NoError(t, err)
		layers, err := img.Layers()
		require.NoError(t, err)
		var ds []v1.Hash
		for _, l := range layers {
			h, err := l.Digest()
			require.NoError(t, err)
			ds = append(ds, h)
		}
		digests = append(digests, ds)
	}
	assert.Equal(t, digests[0], digests[1], "the platforms share the same layers")
	require.Len(t, digests[0], 3, "the default base's layer and the two of the builder")
	base, err := build.Static().Load(context.Background())
	require.NoError(t, err)
	staticImg, err := base.ForPlatform(*im.Manifests[0].Platform)
	require.NoError(t, err)
	staticLayers, err := staticImg.Layers()
	require.NoError(t, err)
	want, err := staticLayers[0].Digest()
	require.NoError(t, err)
	assert.Equal(t, want, digests[0][0], "the files builder's default base is Static too")
	assert.NotEqual(t, im.Manifests[0].Digest, im.Manifests[1].Digest, "but not the same config")
}
