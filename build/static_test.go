package build_test

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/build"
)

// layerFile is a tar entry of a layer with its content.
type layerFile struct {
	hdr  *tar.Header
	data []byte
}

// layerFiles reads every entry of a layer (or a flattened filesystem) by name.
func layerFiles(t *testing.T, rc io.ReadCloser) (map[string]layerFile, []string) {
	t.Helper()
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]layerFile{}
	var order []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, order
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		files[h.Name] = layerFile{hdr: h, data: data}
		order = append(order, h.Name)
	}
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// TestStaticFiles reads the one layer of the default base, for arm64: the files are
// at the paths a Go program (and distroless users) expect, with the vendored
// content, owned by root but for the nonroot home, dated at the epoch, sorted.
func TestStaticFiles(t *testing.T) {
	base, err := build.Static().Load(context.Background())
	require.NoError(t, err)
	assert.Empty(t, base.Name, "the built-in base records no base name")
	img, err := base.ForPlatform(v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"})
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "linux/arm64/v8", cf.Platform().String())
	assert.Contains(t, cf.Config.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
	require.Len(t, cf.History, 1)
	assert.Equal(t, "shipkit build.Static: ca-certificates 20230311+deb12u1, tzdata 2025b-0+deb12u2", cf.History[0].CreatedBy)
	layers, err := img.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 1)
	rc, err := layers[0].Uncompressed()
	require.NoError(t, err)
	files, order := layerFiles(t, rc)

	assert.IsIncreasing(t, order, "entries are sorted")
	for name, f := range files {
		assert.True(t, f.hdr.ModTime.Equal(time.Unix(0, 0)), "%s: mtime %s", name, f.hdr.ModTime)
		if name != "home/nonroot/" {
			assert.Zero(t, f.hdr.Uid, name)
			assert.Zero(t, f.hdr.Gid, name)
		}
	}
	for name, want := range map[string]string{
		"etc/ssl/certs/ca-certificates.crt": "a3413a37a8e09cc21b2c11c9ffb23d92d2fc9d1933c9e7617f5c4fba4f72d37d",
		"usr/share/zoneinfo/Asia/Tokyo":     "a02b9e66044dc5c35c5f76467627fdcba4aee1cc958606b85c777095cad82ceb",
		"usr/share/zoneinfo/Europe/Berlin":  "5ee475f71a0fc1a32faeb849f8c39c6e7aa66d6d41ec742b97b3a7436b3b0701",
	} {
		f, ok := files[name]
		require.True(t, ok, "no %s", name)
		assert.Equal(t, want, sha(f.data), name)
		assert.Equal(t, int64(0o644), f.hdr.Mode, name)
	}
	for name, target := range map[string]string{
		"usr/share/zoneinfo/posixrules":   "America/New_York",
		"usr/share/zoneinfo/posix/Europe": "../Europe",
	} {
		require.Contains(t, files, name)
		assert.Equal(t, target, files[name].hdr.Linkname, "tzdata's symlinks are kept")
	}
	for _, name := range []string{"etc/passwd", "etc/group", "home/nonroot/", "tmp/", "usr/share/doc/ca-certificates/copyright", "usr/share/doc/tzdata/copyright"} {
		require.Contains(t, files, name)
	}
	assert.Contains(t, string(files["etc/passwd"].data), "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
	assert.Contains(t, string(files["etc/group"].data), "nonroot:x:65532:\n")
	home := files["home/nonroot/"].hdr
	assert.Equal(t, [3]int64{65532, 65532, 0o700}, [3]int64{int64(home.Uid), int64(home.Gid), home.Mode})
	assert.Equal(t, int64(0o1777), files["tmp/"].hdr.Mode, "a sticky /tmp anyone can write")
	assert.Contains(t, string(files["usr/share/doc/ca-certificates/copyright"].data), "License: MPL-2.0")
	assert.Contains(t, string(files["usr/share/doc/tzdata/copyright"].data), "public domain")
	var zones int
	for name, f := range files {
		if strings.HasPrefix(name, "usr/share/zoneinfo/") && f.hdr.Typeflag == tar.TypeReg {
			zones++
		}
	}
	assert.Equal(t, 900, zones, "tzdata's zoneinfo files, as the package lists them")
}

// TestGoBuildOnStatic builds a program that reads the system CA pool and a time zone
// on the default base for two platforms: both images start with the same base layer,
// and in each image's filesystem the CA bundle parses with x509 (142 Mozilla roots,
// none of the build machine's local CAs) and the zone files load. On an amd64 host
// the built binary itself runs against the image's files.
func TestGoBuildOnStatic(t *testing.T) {
	idx, err := buildApp(t, copyApp(t), "./probe", build.WithPlatforms("linux/amd64", "linux/arm64"))
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	assert.NotContains(t, im.Annotations, build.AnnotationBaseName)
	require.Len(t, im.Manifests, 2)
	var baseLayers []v1.Hash
	var amd64 v1.Image
	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		require.NoError(t, err)
		if desc.Platform.Architecture == "amd64" {
			amd64 = img
		}
		layers, err := img.Layers()
		require.NoError(t, err)
		require.Len(t, layers, 2, "the base layer and the binary")
		d, err := layers[0].Digest()
		require.NoError(t, err)
		baseLayers = append(baseLayers, d)
		assert.Equal(t, []string{"app/", "app/probe"}, names(tarHeaders(t, layers[1])))

		files, _ := layerFiles(t, mutate.Extract(img))
		bundle := files["etc/ssl/certs/ca-certificates.crt"].data
		var certs int
		for rest := bundle; ; {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			_, err := x509.ParseCertificate(block.Bytes)
			require.NoError(t, err, "certificate %d", certs)
			certs++
		}
		assert.Equal(t, 142, certs, "Mozilla's roots as Debian ships them")
		assert.True(t, x509.NewCertPool().AppendCertsFromPEM(bundle))
		for zone, want := range map[string]int{"Asia/Tokyo": 9 * 3600, "America/Sao_Paulo": -3 * 3600, "Europe/Berlin": 3600} {
			loc, err := time.LoadLocationFromTZData(zone, files["usr/share/zoneinfo/"+zone].data)
			require.NoError(t, err, zone)
			_, off := time.Date(2024, 1, 1, 0, 0, 0, 0, loc).Zone()
			assert.Equal(t, want, off, zone)
		}
	}
	assert.Equal(t, baseLayers[0], baseLayers[1], "one base layer for every platform")

	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("the linux/amd64 binary cannot run on %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	root := extract(t, amd64)
	cmd := exec.CommandContext(t.Context(), filepath.Join(root, "app", "probe"))
	cmd.Env = []string{"SSL_CERT_FILE=" + filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"),
		"SSL_CERT_DIR=" + t.TempDir(), "ZONEINFO=" + filepath.Join(root, "usr/share/zoneinfo")}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "roots=142 tokyo=32400\n", string(out))
}

// extract writes the filesystem of img into a new temporary directory.
func extract(t *testing.T, img v1.Image) string {
	t.Helper()
	root := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return root
		}
		require.NoError(t, err)
		p := filepath.Join(root, filepath.FromSlash(h.Name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		switch h.Typeflag {
		case tar.TypeDir:
			require.NoError(t, os.MkdirAll(p, 0o755))
		case tar.TypeSymlink:
			require.NoError(t, os.Symlink(h.Linkname, p))
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, data, os.FileMode(h.Mode).Perm()|0o200))
		}
	}
}
