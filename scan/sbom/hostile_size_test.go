package sbom_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	syftpkg "github.com/anchore/syft/syft/pkg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/sbom"
)

// usage samples, while a catalog runs, the bytes under a directory and the Go heap.
type usage struct {
	stop chan struct{}
	wg   sync.WaitGroup
	disk int64  // peak bytes of files under the directory
	heap uint64 // peak HeapInuse
}

func watch(dir string) *usage {
	u := &usage{stop: make(chan struct{})}
	sample := func() {
		var n int64
		_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		u.disk, u.heap = max(u.disk, n), max(u.heap, ms.HeapInuse)
	}
	u.wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			sample()
			select {
			case <-u.stop:
				return
			case <-tick.C:
			}
		}
	})
	return u
}

func (u *usage) done() { close(u.stop); u.wg.Wait() }

// Layers whose tar headers lie about sizes, or hold a terabyte sparse file in a few
// blocks, are refused or cataloged without reading, storing or holding the size
// they claim.
func TestCatalogHostileSizes(t *testing.T) {
	const huge = 1 << 40 // 1 TiB: reading, writing or buffering it cannot pass the bounds below
	elf := []byte("\x7fELF\x02\x01\x01")
	tests := []struct {
		name    string
		files   []testimage.File
		wantErr string // "" when the image must catalog
	}{
		{"sparse executable", []testimage.File{
			{Name: "usr/bin/huge", Typeflag: tar.TypeGNUSparse, Size: huge, Body: elf, Mode: 0o755}}, ""},
		{"sparse jar", []testimage.File{
			{Name: "opt/huge.jar", Typeflag: tar.TypeGNUSparse, Size: huge, Body: []byte("PK\x05\x06")}}, ""},
		{"sparse package database", []testimage.File{
			{Name: "var/lib/dpkg/status.d/huge", Typeflag: tar.TypeGNUSparse, Size: huge, Body: []byte("Package: x\n")}}, ""},
		{"header claims a terabyte, body short", []testimage.File{
			{Name: "usr/bin/liar", Size: huge, Body: elf, Mode: 0o755},
			{Name: "usr/bin/swallowed", Body: elf, Mode: 0o755}}, "unexpected EOF"},
		{"header claims less than the body", []testimage.File{
			{Name: "usr/bin/liar", Size: 7, Body: bytes.Repeat([]byte("A"), 4096), Mode: 0o755}}, "invalid tar header"},
	}
	testimage.GoBinary(t)
	wd, err := os.Getwd()
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := isolateTemp(t)
			img := testimage.Image(t, "amd64",
				testimage.Layer(t, testimage.Tar(t, testimage.DebianFiles()...)),
				testimage.Layer(t, testimage.Tar(t, tt.files...)))
			u := watch(tmp)
			start := time.Now()
			s, err := sbom.New().Catalog(context.Background(), img)
			took := time.Since(start)
			u.done()
			t.Logf("took %s, peak temp %d bytes, peak heap %d MiB, error: %v", took, u.disk, u.heap>>20, err)

			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "catalog sha256:")
				assert.Contains(t, err.Error(), "read image")
				assert.Contains(t, err.Error(), tt.wantErr)
			} else {
				require.NoError(t, err)
				assert.Contains(t, packages(s)[syftpkg.DebPkg], "libc6@2.36-9+deb12u2", "the rest of the image is still cataloged")
			}
			assert.Less(t, took, 2*time.Minute, "a catalog that reads the claimed size does not finish")
			assert.Less(t, u.disk, int64(64<<20), "temp files stay near the layers' stored size")
			assert.Less(t, u.heap, uint64(1<<30), "heap stays bounded")
			for _, f := range tt.files {
				assert.NoFileExists(t, filepath.Join(wd, f.Name), "nothing extracted into the working directory")
			}
		})
	}
}
