package build_test

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"io"
	"io/fs"
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
	"github.com/shipkit/shipkit/internal/option"
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
	assert.NotContains(t, im.Annotations, build.AnnotationBaseName, "the built-in base records no base name")

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
		require.Len(t, layers, 2, "the default base's layer and the binary")
		assert.Contains(t, cf.Config.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "the default base's environment")
		hdrs := tarHeaders(t, layers[1])
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
	// A host whose Go environment differs must not change the image.
	t.Setenv("GOAMD64", "v3")
	t.Setenv("GOARM64", "v9.0")
	t.Setenv("GOFLAGS", "-tags=hosttag -ldflags=-X=main.x=y")
	b, err := buildApp(t, copyApp(t), ".", build.WithPlatforms("linux/arm64", "linux/amd64"))
	require.NoError(t, err)
	da, err := a.Digest()
	require.NoError(t, err)
	db, err := b.Digest()
	require.NoError(t, err)
	assert.Equal(t, da, db, "same source in two directories, and on a host with another Go environment, gives the same digest")
	bim, err := b.IndexManifest()
	require.NoError(t, err)
	bimg, err := b.Image(bim.Manifests[0].Digest)
	require.NoError(t, err)
	assert.Empty(t, setting(binaryInfo(t, bimg), "-tags"), "the host's GOFLAGS do not reach the build")

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
	// Official images claim their own source and revision; the built image must not.
	base = mutate.Annotations(base, map[string]string{build.AnnotationSource: "https://example.com/base.git",
		build.AnnotationRevision: "base-rev", "vendor.example/x": "y"}).(v1.Image)
	bi := build.ImageBase("registry.example/base:1", base)
	baseDigest, err := base.Digest()
	require.NoError(t, err)

	idx, err := buildApp(t, copyApp(t), ".", build.WithBase(bi), build.WithEnv("MODE=prod"),
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
	assert.NotContains(t, m.Annotations, build.AnnotationSource, "the base's source is not the image's")
	assert.NotContains(t, m.Annotations, build.AnnotationRevision)
	assert.NotContains(t, m.Annotations, "vendor.example/x")
	layers, err := img.Layers()
	require.NoError(t, err)
	assert.Len(t, layers, 3, "two base layers and the binary")
	got, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, []string{"PATH=/usr/bin", "MODE=prod"}, got.Config.Env, "WithEnv replaces the base's value")
	assert.Equal(t, "1000", got.Config.User)

	_, err = buildApp(t, copyApp(t), ".", build.WithBase(bi), build.WithPlatforms("linux/arm64"))
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
		{"go env", ".", []build.Option{build.WithGoEnv("GOOS=darwin")}, []string{"GOOS is set by the builder"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := build.NewGo(tt.opts...)
			if err == nil {
				_, err = b.Build(context.Background(), build.Source{Dir: dir, Path: tt.path})
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.ErrorContains(t, err, w)
			}
		})
	}
	_, err := buildApp(t, dir, "./lib")
	assert.ErrorIs(t, err, build.ErrNotMain)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b, err := build.NewGo()
	require.NoError(t, err)
	_, err = b.Build(ctx, build.Source{Dir: dir})
	assert.True(t, errors.Is(err, context.Canceled), "a cancelled build fails with context.Canceled, got %v", err)
	_, err = b.Build(context.Background(), build.Source{Dir: dir})
	assert.NoError(t, err, "a cancelled build does not spoil the builder")
}

// TestGoBuildMissingDir: a Source.Dir that does not exist (or is a file) is a
// *build.SourceDirError naming it, wrapping fs.ErrNotExist, found before the go
// command runs: not "fork/exec .../go: no such file or directory".
func TestGoBuildMissingDir(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	b, err := build.NewGo()
	require.NoError(t, err)
	_, err = b.Build(context.Background(), build.Source{Dir: missing})
	var sde *build.SourceDirError
	require.ErrorAs(t, err, &sde)
	assert.Equal(t, missing, sde.Dir)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Equal(t, "source dir "+missing+": no such file or directory", err.Error())

	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err = b.Build(context.Background(), build.Source{Dir: file})
	require.ErrorAs(t, err, &sde)
	assert.EqualError(t, err, "source dir "+file+": not a directory")

	fb, err := build.NewFiles([]build.Layer{{Name: "x", Files: []build.File{{Src: "a", Dst: "/a"}}}})
	require.NoError(t, err)
	_, err = fb.Build(context.Background(), build.Source{Dir: missing})
	require.ErrorAs(t, err, &sde, "the files builder says the same")
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

// TestNewGoRefusesPlatforms: a platform the Go builder cannot build fails at NewGo,
// before any build; the variants it maps to Go settings are accepted.
func TestNewGoRefusesPlatforms(t *testing.T) {
	for platform, want := range map[string]string{
		"linux":                 `platform "linux"`,
		"linux/nosucharch":      "cannot build linux/nosucharch",
		"windows/amd64":         "only linux",
		"linux/arm/v9":          `variant "v9" of arm`,
		"linux/amd64/v5":        `variant "v5" of amd64`,
		"linux/ppc64le/power9":  `variant "power9" of ppc64le`,
		"linux/arm64/v8.10":     `variant "v8.10" of arm64`,
		"linux/amd64:10.0.1234": "OS versions",
	} {
		_, err := build.NewGo(build.WithPlatforms("linux/amd64", platform))
		assert.ErrorContains(t, err, want, platform)
	}
	for _, ok := range []string{"linux/arm64/v8", "linux/arm64/v9.2", "linux/arm/v6", "linux/amd64/v3", "linux/riscv64", "linux/s390x"} {
		_, err := build.NewGo(build.WithPlatforms(ok))
		assert.NoError(t, err, ok)
	}
}

// TestOptionsRefuseInvalidValues: an option given a value it cannot honour fails
// the constructor, naming the option, instead of being ignored or replaced.
func TestOptionsRefuseInvalidValues(t *testing.T) {
	for _, tt := range []struct {
		opt  build.Option
		want string
	}{
		{build.WithUser(""), "WithUser: empty user"},
		{build.WithEnv("MODE"), `WithEnv("MODE")`},
		{build.WithEnv("=x"), `WithEnv("=x")`},
		{build.WithBuildTags("a,b"), `WithBuildTags("a,b")`},
		{build.WithBuildTags(""), `WithBuildTags("")`},
		{build.WithBinaryCache(""), "WithBinaryCache: empty directory"},
		{build.WithBase(nil), "WithBase: nil base"},
		{build.WithJobs(0), "WithJobs(0)"},
		{build.WithWorkdir("app"), `WithWorkdir("app")`},
	} {
		_, err := build.NewGo(tt.opt)
		assert.ErrorContains(t, err, tt.want)
		assert.ErrorIs(t, err, option.ErrInvalid, "the one invalid-option sentinel of every stage (deploy.ErrInvalidOption, …)")
	}
	_, err := build.NewGo(build.WithJobs(0), build.WithUser(""))
	assert.ErrorContains(t, err, "WithJobs(0)")
	assert.ErrorContains(t, err, "WithUser: empty user", "every bad option is named at once")
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

// binaryInfo reads the Go build info of the binary in the top layer of img.
func binaryInfo(t *testing.T, img v1.Image) *buildinfo.BuildInfo {
	t.Helper()
	layers, err := img.Layers()
	require.NoError(t, err)
	rc, err := layers[len(layers)-1].Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		require.NoError(t, err, "no binary in the top layer")
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			require.NoError(t, err)
			info, err := buildinfo.Read(bytes.NewReader(data))
			require.NoError(t, err)
			return info
		}
	}
}

func setting(info *buildinfo.BuildInfo, key string) string {
	for _, s := range info.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

func TestGoBuildVariantsAndGoEnv(t *testing.T) {
	t.Setenv("GOAMD64", "v2") // the host's setting must not leak in
	idx, err := buildApp(t, copyApp(t), ".", build.WithPlatforms("linux/amd64", "linux/amd64/v3", "linux/arm/v6"),
		build.WithGoEnv("GOFLAGS=-tags=shipkittest"))
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	want := map[string][2]string{"linux/amd64": {"GOAMD64", "v1"}, "linux/amd64/v3": {"GOAMD64", "v3"}, "linux/arm/v6": {"GOARM", "6"}}
	require.Len(t, im.Manifests, 3)
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		require.NoError(t, err)
		info := binaryInfo(t, img)
		w := want[d.Platform.String()]
		assert.Equal(t, w[1], setting(info, w[0]), "%s: %s", d.Platform, w[0])
		assert.Equal(t, "shipkittest", setting(info, "-tags"), "WithGoEnv reaches the go command")
	}
}

func TestGoBuildBinaryCache(t *testing.T) {
	dir, cache := copyApp(t), t.TempDir()
	first, err := buildApp(t, dir, ".", build.WithBinaryCache(cache))
	require.NoError(t, err)
	again, err := buildApp(t, dir, ".", build.WithBinaryCache(cache))
	require.NoError(t, err)
	d1, _ := first.Digest()
	d2, _ := again.Digest()
	assert.Equal(t, d1, d2)

	// A source change with a warm cache gives a new binary.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "lib", "lib.go"),
		[]byte("package lib\n\n// Greeting is what the app prints.\nfunc Greeting() string { return \"changed\" }\n"), 0o644))
	changed, err := buildApp(t, dir, ".", build.WithBinaryCache(cache))
	require.NoError(t, err)
	d3, _ := changed.Digest()
	assert.NotEqual(t, d1, d3, "a changed source must not reuse the cached binary")

	// A cached binary cut short (an interrupted copy) is never put in an image.
	cached, err := filepath.Glob(filepath.Join(cache, "*", "app"))
	require.NoError(t, err)
	require.Len(t, cached, 1)
	fi, err := os.Stat(cached[0])
	require.NoError(t, err)
	require.NoError(t, os.Truncate(cached[0], 64<<10))
	fixed, err := buildApp(t, dir, ".", build.WithBinaryCache(cache))
	require.NoError(t, err)
	d4, _ := fixed.Digest()
	assert.Equal(t, d3, d4, "a truncated cache entry is rebuilt, not shipped")
	fi2, err := os.Stat(cached[0])
	require.NoError(t, err)
	assert.Equal(t, fi.Size(), fi2.Size(), "the cache holds the whole binary again")
	leftovers, err := filepath.Glob(filepath.Join(cache, "*", "app.*"))
	require.NoError(t, err)
	assert.Equal(t, []string{cached[0] + ".sha256"}, leftovers, "no temporary links are left in the cache")
}
