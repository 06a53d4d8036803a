package sbom_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/sbom"
)

// debPkg is one package of a generated Debian-like base.
type debPkg struct{ name, version string }

// debBase returns the files of a Debian 12 base whose dpkg status lists pkgs, each
// with its info/<name>.list naming its copyright file, and that copyright file
// (a GPL-2 or MIT text, so syft's license scanner has work).
func debBase(pkgs []debPkg) []testimage.File {
	files := append([]testimage.File(nil), testimage.DebianFiles()[:5]...)
	var status strings.Builder
	for i, p := range pkgs {
		fmt.Fprintf(&status, "Package: %s\nStatus: install ok installed\nPriority: optional\nSection: libs\n"+
			"Installed-Size: 100\nMaintainer: Nobody <nobody@example.org>\nArchitecture: amd64\nVersion: %s\n"+
			"Description: package %d\n\n", p.name, p.version, i)
		doc := "usr/share/doc/" + p.name + "/copyright"
		files = append(files,
			testimage.File{Name: "var/lib/dpkg/info/" + p.name + ".list", Body: []byte("/usr/share/doc/" + p.name + "\n/" + doc + "\n")},
			testimage.File{Name: doc, Body: []byte(copyrightText(i))})
	}
	return append(files, testimage.File{Name: "var/lib/dpkg/status", Body: []byte(status.String())})
}

func copyrightText(i int) string {
	if i%2 == 0 {
		return "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+\n"
	}
	return "Files: *\nLicense: MIT\n Permission is hereby granted, free of charge, to any person obtaining a copy\n" +
		" of this software and associated documentation files (the \"Software\"), to deal\n in the Software without restriction.\n"
}

func debPkgs(n int, version string) []debPkg {
	out := make([]debPkg, n)
	for i := range out {
		out[i] = debPkg{fmt.Sprintf("lib%02d", i), version}
	}
	return out
}

func layerOf(t testing.TB, files ...testimage.File) v1.Layer {
	t.Helper()
	return testimage.Layer(t, testimage.Tar(t, files...))
}

func appLayer(t testing.TB, path string) v1.Layer {
	return layerOf(t, testimage.File{Name: path, Body: testimage.GoBinary(t), Mode: 0o755})
}

// compareCached catalogs each image without a cache and with one cache shared by
// all of them, in order, and requires the syft JSON of both to be the same bytes
// (every package with its id, locations, licenses, CPEs and PURL, every file
// digest and relationship, the distro and the configuration; SPDX and CycloneDX
// are made from the same value but carry a random namespace and a time). It
// returns the cache's stats.
func compareCached(t *testing.T, lc *sbom.LayerCache, imgs ...v1.Image) sbom.LayerCacheStats {
	t.Helper()
	ctx := context.Background()
	plain := sbom.New(sbom.WithConcurrency(1))
	cached := sbom.New(sbom.WithConcurrency(1), sbom.WithLayerCache(lc))
	for i, img := range imgs {
		want, err := plain.Catalog(ctx, img)
		require.NoError(t, err)
		got, err := cached.Catalog(ctx, img)
		require.NoError(t, err)
		require.Equal(t, syftJSON(t, want), syftJSON(t, got), "image %d: syft JSON", i)
	}
	return lc.Stats()
}

func TestLayerCacheTestImages(t *testing.T) {
	testimage.GoBinary(t)
	lc := sbom.NewLayerCache()
	st := compareCached(t, lc, testimage.Debian(t, "amd64"), testimage.Debian(t, "arm64"),
		testimage.Alpine(t, "amd64"), testimage.Debian(t, "amd64"))
	// dpkg, apk and rpm catalogers per image: the Debian images after the first
	// hit for dpkg and rpm (nothing found, the same globs), Alpine misses apk.
	assert.Positive(t, st.Hits)
	assert.Zero(t, st.Unusable, "%+v", st)
	t.Logf("%+v", st)
}

func TestLayerCacheSharedBase(t *testing.T) {
	testimage.GoBinary(t)
	base := layerOf(t, debBase(debPkgs(20, "1.0-1"))...)
	a := testimage.Image(t, "amd64", base, appLayer(t, "app/a"))
	b := testimage.Image(t, "amd64", base, appLayer(t, "usr/local/bin/b"), layerOf(t, testimage.File{Name: "etc/app.conf", Body: []byte("x")}))
	lc := sbom.NewLayerCache()
	st := compareCached(t, lc, a)
	require.Zero(t, st.Hits)
	st = compareCached(t, lc, b)
	require.Equal(t, int64(3), st.Hits, "the second image reuses the base's dpkg, apk and rpm results: %+v", st)
}

func TestLayerCacheUpperLayers(t *testing.T) {
	testimage.GoBinary(t)
	pkgs := debPkgs(10, "1.0-1")
	baseFiles := debBase(pkgs)
	base := layerOf(t, baseFiles...)
	app := appLayer(t, "usr/local/bin/hello")
	status := func(ps []debPkg) testimage.File {
		fs := debBase(ps)
		return fs[len(fs)-1]
	}
	cases := map[string][]v1.Layer{
		// an upper layer rewrites the status: one package more, one less
		"status adds a package":  {layerOf(t, debBase(append(append([]debPkg(nil), pkgs...), debPkg{"extra", "2.0"}))[5:]...)},
		"status drops a package": {layerOf(t, status(pkgs[1:]))},
		"status bumps a version": {layerOf(t, status(debPkgs(10, "1.0-2")))},
		"whiteout of a copyright file": {layerOf(t,
			testimage.File{Name: "usr/share/doc/lib03/.wh.copyright"})},
		"opaque whiteout of a doc dir": {layerOf(t,
			testimage.File{Name: "usr/share/doc/lib04/", Typeflag: tar.TypeDir, Mode: 0o755},
			testimage.File{Name: "usr/share/doc/lib04/.wh..wh..opq"})},
		"whiteout of a .list file":  {layerOf(t, testimage.File{Name: "var/lib/dpkg/info/.wh.lib05.list"})},
		"whiteout of the status":    {layerOf(t, testimage.File{Name: "var/lib/dpkg/.wh.status"})},
		"whiteout of the Go binary": {layerOf(t, testimage.File{Name: "usr/local/bin/.wh.hello"})},
		"os-release changes": {layerOf(t, testimage.File{Name: "etc/os-release",
			Body: []byte(strings.ReplaceAll(testimage.OSRelease, "12", "13"))})},
		"copyright rewritten": {layerOf(t, testimage.File{Name: "usr/share/doc/lib02/copyright", Body: []byte(copyrightText(1))})},
	}
	for name, upper := range cases {
		t.Run(name, func(t *testing.T) {
			lc := sbom.NewLayerCache()
			plain := testimage.Image(t, "amd64", base, app)
			changed := testimage.Image(t, "amd64", append([]v1.Layer{base, app}, upper...)...)
			st := compareCached(t, lc, plain, changed, plain)
			// the second plain image at least replays the first's dpkg, apk and rpm results
			assert.GreaterOrEqual(t, st.Hits, int64(3), "%+v", st)
		})
	}
}

func TestLayerCacheRebase(t *testing.T) {
	testimage.GoBinary(t)
	oldBase := testimage.Image(t, "amd64", layerOf(t, debBase(debPkgs(10, "1.0-1"))...))
	newBase := testimage.Image(t, "amd64", layerOf(t, debBase(debPkgs(10, "1.0-1+deb12u1"))...))
	app, err := mutate.AppendLayers(oldBase, appLayer(t, "app/hello"))
	require.NoError(t, err)
	rebased, err := mutate.Rebase(app, oldBase, newBase)
	require.NoError(t, err)
	other, err := mutate.AppendLayers(newBase, appLayer(t, "app/other"))
	require.NoError(t, err)
	lc := sbom.NewLayerCache()
	compareCached(t, lc, app, rebased, other, app)
	st := lc.Stats()
	assert.Equal(t, int64(3+3), st.Hits, "other reuses rebased's base, app its own: %+v", st)
}

func TestLayerCacheBounded(t *testing.T) {
	testimage.GoBinary(t)
	var imgs []v1.Image
	for i := range 3 {
		imgs = append(imgs, testimage.Image(t, "amd64", layerOf(t, debBase(debPkgs(3+i, "1.0"))...)))
	}
	lc := sbom.NewLayerCache(sbom.WithCacheEntries(2))
	st := compareCached(t, lc, imgs...)
	assert.LessOrEqual(t, st.Entries, 2)
	assert.Positive(t, st.Evicted)

	lc = sbom.NewLayerCache(sbom.WithCacheBytes(1))
	st = compareCached(t, lc, imgs[0], imgs[0])
	assert.Zero(t, st.Entries)
	assert.Zero(t, st.Hits)
}

func TestLayerCacheDisk(t *testing.T) {
	testimage.GoBinary(t)
	dir := t.TempDir()
	key := []byte("k")
	img := testimage.Image(t, "amd64", layerOf(t, debBase(debPkgs(5, "1.0"))...), appLayer(t, "app/a"))
	st := compareCached(t, sbom.NewLayerCache(sbom.WithCacheDir(dir), sbom.WithCacheSecret(key), syftRelease), img)
	require.Equal(t, int64(3), st.Stored)

	// a new process (a new cache) reads the entries back
	st = compareCached(t, sbom.NewLayerCache(sbom.WithCacheDir(dir), sbom.WithCacheSecret(key), syftRelease), img)
	require.Equal(t, int64(3), st.Hits, "%+v", st)

	var dpkgEntry string
	files, err := filepath.Glob(filepath.Join(dir, "*", "*"))
	require.NoError(t, err)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		if bytes.Contains(b, []byte("lib00")) {
			dpkgEntry = f
		}
	}
	require.NotEmpty(t, dpkgEntry)
	raw, err := os.ReadFile(dpkgEntry)
	require.NoError(t, err)

	// corrupted: a version changed, the checksum not
	corrupted := bytes.ReplaceAll(raw, []byte(`1.0`), []byte(`6.6`))
	require.NoError(t, os.WriteFile(dpkgEntry, corrupted, 0o600))
	lc := sbom.NewLayerCache(sbom.WithCacheDir(dir), sbom.WithCacheSecret(key), syftRelease)
	st = compareCached(t, lc, img)
	assert.Equal(t, int64(1), st.Corrupt, "%+v", st)
	assert.Equal(t, int64(2), st.Hits, "%+v", st)
	files, err = filepath.Glob(filepath.Join(dir, "*", "*"))
	require.NoError(t, err)
	rewritten := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.NotEqual(t, string(corrupted), string(b), "the corrupt file is removed")
		if bytes.Contains(b, []byte("lib00")) {
			rewritten++
		}
	}
	assert.Equal(t, 1, rewritten, "the re-cataloged result is written again")

	// poisoned: a version changed and the SHA-256 recomputed; a cache with a secret
	// (an HMAC key) refuses it
	secretDir := t.TempDir()
	st = compareCached(t, sbom.NewLayerCache(sbom.WithCacheDir(secretDir), sbom.WithCacheSecret([]byte("k")), syftRelease), img)
	require.Equal(t, int64(3), st.Stored)
	files, err = filepath.Glob(filepath.Join(secretDir, "*", "*"))
	require.NoError(t, err)
	poisoned := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		_, body, _ := bytes.Cut(b, []byte("\n"))
		if !bytes.Contains(body, []byte("lib00")) {
			continue
		}
		body = bytes.ReplaceAll(body, []byte(`1.0`), []byte(`6.6`))
		require.NoError(t, os.WriteFile(f, append([]byte(sha256Hex(body)+"\n"), body...), 0o600))
		poisoned++
	}
	require.Equal(t, 1, poisoned)
	st = compareCached(t, sbom.NewLayerCache(sbom.WithCacheDir(secretDir), sbom.WithCacheSecret([]byte("k")), syftRelease), img)
	assert.Equal(t, int64(1), st.Corrupt, "%+v", st)
}

// syftRelease names a syft release in the build information (a test binary
// carries none), so that the cache directory is used.
var syftRelease = sbom.WithSyftVersionForTest("v1.0.0-test")

// Without a syft release in the build information (a test binary's own), entries
// stay in memory: the directory is neither written nor read.
func TestLayerCacheDiskNeedsSyftRelease(t *testing.T) {
	testimage.GoBinary(t)
	dir, key := t.TempDir(), []byte("k")
	img := testimage.Image(t, "amd64", layerOf(t, debBase(debPkgs(3, "1.0"))...))
	st := compareCached(t, sbom.NewLayerCache(sbom.WithCacheDir(dir), sbom.WithCacheSecret(key)), img)
	require.Equal(t, int64(3), st.Stored)
	files, err := filepath.Glob(filepath.Join(dir, "*", "*"))
	require.NoError(t, err)
	assert.Empty(t, files)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// BenchmarkLayerCache catalogs an image on a base of 100 dpkg packages with
// copyright files whose base results are cached (after the first) and without a
// cache, with the license scanner built once for both.
func BenchmarkLayerCache(b *testing.B) {
	testimage.GoBinary(b)
	base := layerOf(b, debBase(debPkgs(100, "1.0-1"))...)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		cache *sbom.LayerCache
	}{{"uncached", nil}, {"cached", sbom.NewLayerCache()}} {
		b.Run(tc.name, func(b *testing.B) {
			c := sbom.New(sbom.WithConcurrency(1), sbom.WithLayerCache(tc.cache))
			_, err := c.Catalog(ctx, testimage.Image(b, "amd64", base, appLayer(b, "app/warm")))
			require.NoError(b, err)
			b.ResetTimer()
			for i := range b.N {
				img := testimage.Image(b, "amd64", base, appLayer(b, fmt.Sprintf("app/%d", i)))
				_, err := c.Catalog(ctx, img)
				require.NoError(b, err)
			}
		})
	}
}

// hostDebianBase is a layer of this host's dpkg database (status, info/*.list,
// *.md5sums, *.conffiles), os-release, /usr/share/doc/*/copyright and three
// binaries: a real Debian 12 root as syft reads it, built at test time.
func hostDebianBase(t testing.TB) v1.Layer {
	t.Helper()
	if _, err := os.Stat("/var/lib/dpkg/status"); err != nil {
		t.Skip("not a Debian host")
	}
	var files []testimage.File
	add := func(p string) {
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			return
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return
		}
		files = append(files, testimage.File{Name: strings.TrimPrefix(p, "/"), Body: b, Mode: int64(fi.Mode().Perm())})
	}
	for _, p := range []string{"/etc/os-release", "/var/lib/dpkg/status", "/usr/bin/ls", "/usr/bin/dpkg", "/usr/bin/bash"} {
		add(p)
	}
	for _, g := range []string{"/var/lib/dpkg/info/*.list", "/var/lib/dpkg/info/*.md5sums", "/var/lib/dpkg/info/*.conffiles", "/usr/share/doc/*/copyright"} {
		ms, err := filepath.Glob(g)
		require.NoError(t, err)
		for _, m := range ms {
			add(m)
		}
	}
	return layerOf(t, files...)
}

func TestLayerCacheDebianRootfs(t *testing.T) {
	if testing.Short() {
		t.Skip("catalogs a real Debian root four times")
	}
	testimage.GoBinary(t)
	base := hostDebianBase(t)
	a := testimage.Image(t, "amd64", base, appLayer(t, "app/a"))
	b := testimage.Image(t, "amd64", base, appLayer(t, "app/b"), layerOf(t, testimage.File{Name: "usr/share/doc/bash/.wh.copyright"}))
	c := testimage.Image(t, "amd64", base, appLayer(t, "usr/local/bin/c"))
	st := compareCached(t, sbom.NewLayerCache(), a, b, c)
	assert.Equal(t, int64(3+2), st.Hits, "c reuses a's results; b's whiteout makes dpkg run again: %+v", st)
}

// A directory without a secret is refused: what is read back is untrusted until
// authenticated.
func TestLayerCacheDirRequiresSecret(t *testing.T) {
	testimage.GoBinary(t)
	c := sbom.New(sbom.WithLayerCache(sbom.NewLayerCache(sbom.WithCacheDir(t.TempDir()))))
	_, err := c.Catalog(context.Background(), testimage.Debian(t, "amd64"))
	require.ErrorContains(t, err, "WithCacheSecret")
}

// An authenticated entry that locates no file (no FilesByGlob or FilesByPath
// call: it would replay on every image) is refused.
func TestLayerCacheRefusesEntryWithoutLookups(t *testing.T) {
	testimage.GoBinary(t)
	dir, key := t.TempDir(), []byte("k")
	img := testimage.Image(t, "amd64", layerOf(t, debBase(debPkgs(5, "1.0"))...), appLayer(t, "app/a"))
	st := compareCached(t, sbom.NewLayerCache(sbom.WithCacheDir(dir), sbom.WithCacheSecret(key), syftRelease), img)
	require.Equal(t, int64(3), st.Stored)
	files, err := filepath.Glob(filepath.Join(dir, "*", "*"))
	require.NoError(t, err)
	forged := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		_, body, _ := bytes.Cut(b, []byte("\n"))
		if !bytes.Contains(body, []byte("lib00")) {
			continue
		}
		var ent map[string]any
		require.NoError(t, json.Unmarshal(body, &ent))
		ent["calls"], ent["layers"] = []any{}, []any{}
		body, err = json.Marshal(ent)
		require.NoError(t, err)
		m := hmac.New(sha256.New, key)
		m.Write(body)
		require.NoError(t, os.WriteFile(f, append([]byte(hex.EncodeToString(m.Sum(nil))+"\n"), body...), 0o600))
		forged++
	}
	require.Equal(t, 1, forged)
	// another image on another base: the forged dpkg result must not replay there
	other := testimage.Image(t, "amd64", layerOf(t, debBase(debPkgs(3, "2.0"))...))
	st = compareCached(t, sbom.NewLayerCache(sbom.WithCacheDir(dir), sbom.WithCacheSecret(key), syftRelease), other)
	assert.Equal(t, int64(1), st.Corrupt, "%+v", st)
}

// The directory is read bounded: a symlink is not followed, a file larger than
// the byte bound is not read, and writing keeps at most the bounds of files.
func TestLayerCacheDiskBounded(t *testing.T) {
	testimage.GoBinary(t)
	dir, key := t.TempDir(), []byte("k")
	img := testimage.Image(t, "amd64", layerOf(t, debBase(debPkgs(5, "1.0"))...), appLayer(t, "app/a"))
	newCache := func(opts ...sbom.CacheOption) *sbom.LayerCache {
		return sbom.NewLayerCache(append([]sbom.CacheOption{sbom.WithCacheDir(dir), sbom.WithCacheSecret(key), syftRelease}, opts...)...)
	}
	st := compareCached(t, newCache(), img)
	require.Equal(t, int64(3), st.Stored)
	files, err := filepath.Glob(filepath.Join(dir, "*", "*"))
	require.NoError(t, err)
	var dpkgEntry string
	var size int64
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		if bytes.Contains(b, []byte("lib00")) {
			dpkgEntry, size = f, int64(len(b))
		}
	}
	require.NotEmpty(t, dpkgEntry)

	// a symlink to a valid entry: not followed
	elsewhere := filepath.Join(t.TempDir(), "entry")
	require.NoError(t, os.Rename(dpkgEntry, elsewhere))
	require.NoError(t, os.Symlink(elsewhere, dpkgEntry))
	st = compareCached(t, newCache(), img)
	assert.Equal(t, int64(2), st.Hits, "%+v", st)

	// larger than the byte bound: not read (the cataloger runs again)
	st = compareCached(t, newCache(sbom.WithCacheBytes(size-1)), img)
	assert.Equal(t, int64(2), st.Hits, "%+v", st)

	// writing keeps the directory within the entry bound
	small := t.TempDir()
	lc := sbom.NewLayerCache(sbom.WithCacheDir(small), sbom.WithCacheSecret(key), syftRelease, sbom.WithCacheEntries(2))
	var imgs []v1.Image
	for i := range 3 {
		imgs = append(imgs, testimage.Image(t, "amd64", layerOf(t, debBase(debPkgs(3+i, "1.0"))...)))
	}
	compareCached(t, lc, imgs...)
	files, err = filepath.Glob(filepath.Join(small, "*", "*"))
	require.NoError(t, err)
	assert.LessOrEqual(t, len(files), 2, "%v", files)
}
