package helm

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/ignore"
)

// The media types of a Helm chart in an OCI registry
// (https://helm.sh/docs/topics/registries/).
const (
	ConfigMediaType       = "application/vnd.cncf.helm.config.v1+json"
	ChartLayerMediaType   = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
	legacyChartLayerMedia = "application/tar+gzip"
)

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// budget counts a chart's files and bytes against the limits.
type budget struct {
	what            string
	files, maxFiles int
	left, max       int64
}

func (c *config) budget(what string) *budget {
	return &budget{what: what, maxFiles: c.maxFiles, left: c.maxChart, max: c.maxChart}
}

func (b *budget) file(name string, size int64) error {
	b.files++
	if b.files > b.maxFiles {
		return fmt.Errorf("%s: more than %d files (at %s): %w", b.what, b.maxFiles, name, ErrTooLarge)
	}
	if size > b.left {
		return fmt.Errorf("%s: more than %d bytes unpacked (at %s): %w", b.what, b.max, name, ErrTooLarge)
	}
	b.left -= size
	return nil
}

// load reads the chart and returns it, with the digest an oci:// source resolved to.
func (r *Renderer) load(ctx context.Context) (*chart.Chart, name.Digest, error) {
	var (
		files  []*archive.BufferedFile
		digest name.Digest
		err    error
	)
	switch {
	case r.oci != nil:
		var data []byte
		if data, digest, err = r.fetchOCI(ctx); err != nil {
			return nil, name.Digest{}, err
		}
		files, err = r.cfg.readArchive(ctx, r.what()+"@"+digest.DigestStr(), bytes.NewReader(data))
	default:
		files, err = r.readLocal(ctx)
	}
	if err != nil {
		return nil, name.Digest{}, err
	}
	ch, err := loader.LoadFiles(files)
	if err != nil {
		return nil, name.Digest{}, fmt.Errorf("%s: %w", r.what(), err)
	}
	return ch, digest, nil
}

func (r *Renderer) readLocal(ctx context.Context) ([]*archive.BufferedFile, error) {
	fi, err := os.Stat(r.source)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.what(), err)
	}
	if fi.IsDir() {
		return r.cfg.readDir(ctx, r.what(), r.source)
	}
	if fi.Size() > r.cfg.maxArchive {
		return nil, fmt.Errorf("%s: archive of %d bytes, more than %d: %w", r.what(), fi.Size(), r.cfg.maxArchive, ErrTooLarge)
	}
	f, err := os.Open(r.source)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.what(), err)
	}
	defer f.Close()
	return r.cfg.readArchive(ctx, r.what(), f)
}

// readArchive reads a chart archive (a gzipped tar of one top directory), checking
// every entry before Helm's loader sees it.
func (c *config) readArchive(ctx context.Context, what string, in io.Reader) ([]*archive.BufferedFile, error) {
	counted := &countingReader{r: io.LimitReader(in, c.maxArchive+1)}
	zr, err := gzip.NewReader(counted)
	if err != nil {
		return nil, fmt.Errorf("%s: not a gzipped chart archive: %w", what, err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	b := c.budget(what)
	var files []*archive.BufferedFile
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hd, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if counted.n > c.maxArchive {
			return nil, fmt.Errorf("%s: archive larger than %d bytes: %w", what, c.maxArchive, ErrTooLarge)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading the archive: %w", what, err)
		}
		switch hd.Typeflag {
		case tar.TypeDir, tar.TypeXGlobalHeader, tar.TypeXHeader:
			continue
		case tar.TypeReg:
		case tar.TypeSymlink, tar.TypeLink:
			return nil, fmt.Errorf("%s: %q is a link (to %q): %w", what, hd.Name, hd.Linkname, ErrUnsafeChart)
		default:
			return nil, fmt.Errorf("%s: %q is not a regular file (tar type %q): %w", what, hd.Name, hd.Typeflag, ErrUnsafeChart)
		}
		rel, err := archivePath(hd.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if err := b.file(rel, hd.Size); err != nil {
			return nil, err
		}
		data, err := io.ReadAll(io.LimitReader(tr, hd.Size))
		if counted.n > c.maxArchive {
			return nil, fmt.Errorf("%s: archive larger than %d bytes: %w", what, c.maxArchive, ErrTooLarge)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading %s: %w", what, hd.Name, err)
		}
		files = append(files, &archive.BufferedFile{Name: rel, ModTime: hd.ModTime, Data: bytes.TrimPrefix(data, utf8BOM)})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no files in the archive", what)
	}
	return files, nil
}

// archivePath returns an archive entry's path inside the chart (without the top
// directory), refusing absolute paths and .. components.
func archivePath(entry string) (string, error) {
	n := strings.ReplaceAll(entry, "\\", "/")
	if path.IsAbs(n) || (len(n) > 1 && n[1] == ':') {
		return "", fmt.Errorf("%q is an absolute path: %w", entry, ErrUnsafeChart)
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", fmt.Errorf("%q leaves the chart (..): %w", entry, ErrUnsafeChart)
		}
	}
	top, rel, ok := strings.Cut(path.Clean(n), "/")
	if !ok || top == "." || rel == "" {
		return "", fmt.Errorf("%q is not inside the chart's top directory: %w", entry, ErrUnsafeChart)
	}
	return rel, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// readDir reads a chart directory as Helm's directory loader does (.helmignore and
// its defaults honoured), refusing symbolic links and irregular files.
func (c *config) readDir(ctx context.Context, what, dir string) ([]*archive.BufferedFile, error) {
	top, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	rules := ignore.Empty()
	if _, err := os.Lstat(filepath.Join(top, ignore.HelmIgnore)); err == nil {
		if rules, err = ignore.ParseFile(filepath.Join(top, ignore.HelmIgnore)); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", what, ignore.HelmIgnore, err)
		}
	}
	rules.AddDefaults()
	b := c.budget(what)
	var files []*archive.BufferedFile
	err = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == top {
			return nil
		}
		rel, err := filepath.Rel(top, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if rules.Ignore(rel, fi) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			return nil
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			return fmt.Errorf("%s: %s is a symbolic link (to %q): %w", what, rel, target, ErrUnsafeChart)
		case !fi.Mode().IsRegular():
			return fmt.Errorf("%s: %s is not a regular file (%s): %w", what, rel, fi.Mode().Type(), ErrUnsafeChart)
		}
		if err := b.file(rel, fi.Size()); err != nil {
			return err
		}
		data, err := readFileMax(p, fi.Size())
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		files = append(files, &archive.BufferedFile{Name: rel, ModTime: fi.ModTime(), Data: bytes.TrimPrefix(data, utf8BOM)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return files, nil
}

// readFileMax reads a file of at most size bytes (a chart's file may have grown
// since it was counted; a values file is bounded by the chart's limit).
func readFileMax(p string, size int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > size {
		return nil, fmt.Errorf("%s: more than %d bytes: %w", p, size, ErrTooLarge)
	}
	return data, nil
}

// fetchOCI resolves an oci:// chart to its manifest's digest and reads its chart
// layer, bounded.
func (r *Renderer) fetchOCI(ctx context.Context) ([]byte, name.Digest, error) {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(r.cfg.keychain)}
	if r.cfg.transport != nil {
		opts = append(opts, remote.WithTransport(r.cfg.transport))
	}
	desc, err := remote.Get(r.oci, opts...)
	if err != nil {
		return nil, name.Digest{}, fmt.Errorf("%s: %w", r.what(), err)
	}
	digest := r.oci.Context().Digest(desc.Digest.String())
	what := r.what() + "@" + desc.Digest.String()
	if desc.MediaType.IsIndex() {
		return nil, name.Digest{}, fmt.Errorf("%s: an image index (%s), not a Helm chart", what, desc.MediaType)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, name.Digest{}, fmt.Errorf("%s: manifest: %w", what, err)
	}
	if m.Config.MediaType != ConfigMediaType {
		return nil, name.Digest{}, fmt.Errorf("%s: not a Helm chart: config media type %q, want %q", what, m.Config.MediaType, ConfigMediaType)
	}
	var layer *v1.Descriptor
	for i, l := range m.Layers {
		if l.MediaType == ChartLayerMediaType || l.MediaType == legacyChartLayerMedia {
			if layer != nil {
				return nil, name.Digest{}, fmt.Errorf("%s: more than one chart layer", what)
			}
			layer = &m.Layers[i]
		}
	}
	if layer == nil {
		return nil, name.Digest{}, fmt.Errorf("%s: no layer of media type %s", what, ChartLayerMediaType)
	}
	if layer.Size > r.cfg.maxArchive || layer.Size < 0 {
		return nil, name.Digest{}, fmt.Errorf("%s: chart layer of %d bytes, more than %d: %w", what, layer.Size, r.cfg.maxArchive, ErrTooLarge)
	}
	l, err := remote.Layer(r.oci.Context().Digest(layer.Digest.String()), opts...)
	if err != nil {
		return nil, name.Digest{}, fmt.Errorf("%s: chart layer %s: %w", what, layer.Digest, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, name.Digest{}, fmt.Errorf("%s: chart layer %s: %w", what, layer.Digest, err)
	}
	defer rc.Close()
	// go-containerregistry checks the blob's size and digest as it is read to the end.
	data, err := io.ReadAll(io.LimitReader(rc, layer.Size+1))
	if err != nil {
		return nil, name.Digest{}, fmt.Errorf("%s: chart layer %s: %w", what, layer.Digest, err)
	}
	if int64(len(data)) != layer.Size {
		return nil, name.Digest{}, fmt.Errorf("%s: chart layer %s: %d bytes, the manifest says %d", what, layer.Digest, len(data), layer.Size)
	}
	return data, digest, nil
}
