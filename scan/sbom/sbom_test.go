package sbom_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	syftpkg "github.com/anchore/syft/syft/pkg"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/sbom"
)

// isolateTemp points TMPDIR at a fresh directory and fails the test if anything is
// left in it at the end.
func isolateTemp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	t.Cleanup(func() {
		left, err := os.ReadDir(dir)
		require.NoError(t, err)
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		assert.Empty(t, names, "temporary files left behind")
	})
	return dir
}

// packages returns name@version of the SBOM's packages by type.
func packages(s *scan.SBOM) map[syftpkg.Type][]string {
	out := map[syftpkg.Type][]string{}
	for p := range s.Syft().Artifacts.Packages.Enumerate() {
		out[p.Type] = append(out[p.Type], p.Name+"@"+p.Version)
	}
	return out
}

func TestCatalog(t *testing.T) {
	testimage.GoBinary(t) // built before TMPDIR moves
	isolateTemp(t)
	img := testimage.Debian(t, "amd64")
	digest, err := img.Digest()
	require.NoError(t, err)

	s, err := sbom.New().Catalog(context.Background(), img)
	require.NoError(t, err)
	assert.Equal(t, digest, s.Subject)
	require.NotNil(t, s.Platform)
	assert.Equal(t, "linux/amd64", s.Platform.String())

	got := packages(s)
	assert.Contains(t, got[syftpkg.GoModulePkg], "golang.org/x/text@v0.3.6")
	assert.Contains(t, got[syftpkg.DebPkg], "libc6@2.36-9+deb12u2")
	assert.Contains(t, got[syftpkg.JavaPkg], "commons-text@1.9")
	rel := s.Syft().Artifacts.LinuxDistribution
	require.NotNil(t, rel)
	assert.Equal(t, "debian", rel.ID)
	assert.Equal(t, "12", rel.VersionID)

	sum := sbom.Summary(s)
	assert.Equal(t, 1, sum["deb"])
	assert.Equal(t, 1, sum["java-archive"])
}

func TestEncode(t *testing.T) {
	testimage.GoBinary(t)
	isolateTemp(t)
	s, err := sbom.New().Catalog(context.Background(), testimage.Debian(t, "amd64"))
	require.NoError(t, err)

	tests := []struct {
		format sbom.Format
		check  func(t *testing.T, doc map[string]any)
	}{
		{sbom.SPDXJSON, func(t *testing.T, doc map[string]any) {
			assert.Equal(t, "SPDX-2.3", doc["spdxVersion"])
			assert.Equal(t, "SPDXRef-DOCUMENT", doc["SPDXID"])
			assert.NotEmpty(t, doc["packages"])
		}},
		{sbom.CycloneDXJSON, func(t *testing.T, doc map[string]any) {
			assert.Equal(t, "CycloneDX", doc["bomFormat"])
			assert.Equal(t, "1.6", doc["specVersion"])
			assert.NotEmpty(t, doc["components"])
		}},
		{sbom.SyftJSON, func(t *testing.T, doc map[string]any) {
			assert.NotEmpty(t, doc["artifacts"])
			assert.Contains(t, doc, "distro")
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.format), func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, sbom.Encode(&buf, s, tt.format))
			assert.Contains(t, buf.String(), "golang.org/x/text")
			assert.Contains(t, buf.String(), "libc6")
			var doc map[string]any
			require.NoError(t, json.Unmarshal(buf.Bytes(), &doc))
			tt.check(t, doc)
		})
	}

	require.ErrorContains(t, sbom.Encode(&bytes.Buffer{}, s, "xml"), `unknown SBOM format "xml"`)
	require.Error(t, sbom.Encode(&bytes.Buffer{}, nil, sbom.SPDXJSON))
}

func TestCatalogIndexAndLayout(t *testing.T) {
	testimage.GoBinary(t)
	idx := testimage.Index(t)

	t.Run("index", func(t *testing.T) {
		isolateTemp(t)
		sboms, err := sbom.New().CatalogIndex(context.Background(), idx)
		require.NoError(t, err)
		require.Len(t, sboms, 2)
		assert.Equal(t, "linux/amd64", sboms[0].Platform.String())
		assert.Equal(t, "linux/arm64", sboms[1].Platform.String())
		assert.NotEqual(t, sboms[0].Subject, sboms[1].Subject)
		for _, s := range sboms {
			assert.Contains(t, packages(s)[syftpkg.DebPkg], "libc6@2.36-9+deb12u2")
		}
	})

	t.Run("OCI layout", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "oci")
		p, err := layout.Write(dir, empty.Index)
		require.NoError(t, err)
		require.NoError(t, p.AppendIndex(idx))
		isolateTemp(t)
		sboms, err := sbom.New().CatalogLayout(context.Background(), dir)
		require.NoError(t, err)
		require.Len(t, sboms, 2)
		assert.Contains(t, packages(sboms[1])[syftpkg.GoModulePkg], "golang.org/x/text@v0.3.6")
	})

	t.Run("not a layout", func(t *testing.T) {
		_, err := sbom.New().CatalogLayout(context.Background(), t.TempDir())
		require.ErrorContains(t, err, "catalog OCI layout")
	})
}

func TestCatalogHostileLayers(t *testing.T) {
	outside := t.TempDir() // what a ../ or absolute entry would aim at
	evil := filepath.Join(outside, "pwned")
	tests := []struct {
		name  string
		files []testimage.File
	}{
		{"dot-dot", []testimage.File{{Name: "../../../../../../" + evil[1:], Body: []byte("x")}}},
		{"absolute", []testimage.File{{Name: evil, Body: []byte("x")}}},
		{"symlink out", []testimage.File{
			{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "etc/os-release", Typeflag: tar.TypeSymlink, Linkname: "../../../../../../../../etc/os-release"},
		}},
		{"symlink to absolute host path then write through it", []testimage.File{
			{Name: "escape", Typeflag: tar.TypeSymlink, Linkname: outside},
			{Name: "escape/pwned", Body: []byte("x")},
		}},
		{"device files", []testimage.File{
			{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "dev/sda", Typeflag: tar.TypeBlock},
			{Name: "dev/null", Typeflag: tar.TypeChar},
			{Name: "dev/fifo", Typeflag: tar.TypeFifo},
		}},
		{"hard link out", []testimage.File{{Name: "shadow", Typeflag: tar.TypeLink, Linkname: "../../../etc/shadow"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateTemp(t)
			img := testimage.Image(t, "amd64",
				testimage.Layer(t, testimage.Tar(t, testimage.DebianFiles()...)),
				testimage.Layer(t, testimage.Tar(t, tt.files...)))
			s, err := sbom.New().Catalog(context.Background(), img)
			if err == nil {
				// contained: the host's files are neither written nor read
				rel := s.Syft().Artifacts.LinuxDistribution
				if rel != nil {
					assert.Equal(t, "debian", rel.ID, "os-release must come from the image, not the host")
				}
			} else {
				assert.Contains(t, err.Error(), "catalog sha256:")
			}
			assert.NoFileExists(t, evil)
		})
	}
}

func TestCatalogBadInput(t *testing.T) {
	isolateTemp(t)
	ctx := context.Background()

	t.Run("truncated layer", func(t *testing.T) {
		full := testimage.Tar(t, testimage.DebianFiles()...)
		img := testimage.Image(t, "amd64", testimage.Layer(t, full[:len(full)/2+7]))
		_, err := sbom.New().Catalog(ctx, img)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "read image")
	})

	t.Run("too large", func(t *testing.T) {
		img := testimage.Debian(t, "amd64")
		_, err := sbom.New(sbom.WithMaxImageSize(1024)).Catalog(ctx, img)
		require.ErrorIs(t, err, sbom.ErrImageTooLarge)
	})

	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := sbom.New().Catalog(cctx, testimage.Debian(t, "amd64"))
		require.ErrorIs(t, err, context.Canceled)
	})

	t.Run("nil", func(t *testing.T) {
		_, err := sbom.New().Catalog(ctx, nil)
		require.Error(t, err)
		_, err = sbom.New().CatalogIndex(ctx, nil)
		require.Error(t, err)
	})

	t.Run("empty index", func(t *testing.T) {
		_, err := sbom.New().CatalogIndex(ctx, empty.Index)
		require.ErrorContains(t, err, "no platform image")
	})
}

// blobCounter counts the blob GETs that pass through it, by digest.
type blobCounter struct {
	mu   sync.Mutex
	gets map[string]int
	next http.RoundTripper
}

func (c *blobCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if _, digest, ok := strings.Cut(r.URL.Path, "/blobs/"); ok && r.Method == http.MethodGet {
		c.mu.Lock()
		c.gets[digest]++
		c.mu.Unlock()
	}
	return c.next.RoundTrip(r)
}

func (c *blobCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gets
	c.gets = map[string]int{}
	return g
}

// layerDigests returns the digests of img's layers.
func layerDigests(t *testing.T, img v1.Image) []string {
	t.Helper()
	ls, err := img.Layers()
	require.NoError(t, err)
	var out []string
	for _, l := range ls {
		d, err := l.Digest()
		require.NoError(t, err)
		out = append(out, d.String())
	}
	return out
}

func TestCatalogRemote(t *testing.T) {
	testimage.GoBinary(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	idx := testimage.Index(t)
	idxRef, err := name.ParseReference(host + "/app:multi")
	require.NoError(t, err)
	require.NoError(t, remote.WriteIndex(idxRef, idx))
	img := testimage.Debian(t, "amd64")
	imgRef, err := name.ParseReference(host + "/app:amd64")
	require.NoError(t, err)
	require.NoError(t, remote.Write(imgRef, img))

	isolateTemp(t)
	ctx := context.Background()
	counter := &blobCounter{gets: map[string]int{}, next: http.DefaultTransport}
	transport := remote.WithTransport(counter)

	sboms, err := sbom.New().CatalogRemote(ctx, imgRef, transport)
	require.NoError(t, err)
	require.Len(t, sboms, 1)
	assert.Contains(t, packages(sboms[0])[syftpkg.DebPkg], "libc6@2.36-9+deb12u2")
	assert.Equal(t, host+"/app", rootOf(t, sboms[0], sbom.SPDXJSON).name, "named by the reference's repository")
	gets := counter.take()
	t.Logf("image blob GETs: %v", gets)
	layers := layerDigests(t, img)
	require.Len(t, layers, 2)
	for _, d := range layers {
		assert.Equal(t, 1, gets[d], "layer %s fetched once", d)
	}

	sboms, err = sbom.New().CatalogRemote(ctx, idxRef, transport)
	require.NoError(t, err)
	require.Len(t, sboms, 2)
	gets = counter.take()
	t.Logf("index blob GETs: %v", gets)
	// Platform images are cataloged one by one, so a layer that several of them
	// share (here both layers) is fetched once for each.
	m, err := idx.IndexManifest()
	require.NoError(t, err)
	holders := map[string]int{}
	for _, desc := range m.Manifests {
		pimg, err := idx.Image(desc.Digest)
		require.NoError(t, err)
		for _, d := range layerDigests(t, pimg) {
			holders[d]++
		}
	}
	require.Len(t, holders, 2)
	for d, n := range holders {
		assert.Equal(t, n, gets[d], "layer %s fetched once per platform image holding it", d)
	}

	missing, err := name.ParseReference(host + "/nope:latest")
	require.NoError(t, err)
	_, err = sbom.New().CatalogRemote(ctx, missing)
	require.ErrorContains(t, err, "catalog "+host+"/nope:latest")
}

func TestCatalogAlpine(t *testing.T) {
	testimage.GoBinary(t)
	isolateTemp(t)
	s, err := sbom.New().Catalog(context.Background(), testimage.Alpine(t, "amd64"))
	require.NoError(t, err)

	got := packages(s)
	assert.ElementsMatch(t, []string{"busybox@1.36.1-r2", "libcrypto3@3.1.1-r1"}, got[syftpkg.ApkPkg])
	assert.Contains(t, got[syftpkg.GoModulePkg], "golang.org/x/text@v0.3.6")
	rel := s.Syft().Artifacts.LinuxDistribution
	require.NotNil(t, rel)
	assert.Equal(t, "alpine", rel.ID)
	assert.Equal(t, "3.18.4", rel.VersionID)
	for p := range s.Syft().Artifacts.Packages.Enumerate(syftpkg.ApkPkg) {
		assert.Contains(t, p.PURL, "distro=alpine-3.18.4", p.Name)
		if p.Name == "libcrypto3" {
			md, ok := p.Metadata.(syftpkg.ApkDBEntry)
			require.True(t, ok, "apk metadata: %T", p.Metadata)
			assert.Equal(t, "openssl", md.OriginPackage)
		}
	}
}
