package build

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// entry is one regular file of a layer.
type entry struct {
	// name is the absolute path inside the image, e.g. "/app/server".
	name string
	mode int64
	data []byte
}

// reproducibleLayer writes entries into a layer whose bytes depend on nothing but
// the entries and mtime: parent directories are added, entries are sorted, and every
// header is owned by root with the same time.
func reproducibleLayer(entries []entry, mtime time.Time, mt types.MediaType) (v1.Layer, error) {
	files := map[string]entry{}
	dirs := map[string]bool{}
	for _, e := range entries {
		name := strings.TrimPrefix(path.Clean("/"+e.name), "/")
		if name == "" || name == "." {
			return nil, fmt.Errorf("layer entry %q: not a file path", e.name)
		}
		if _, dup := files[name]; dup {
			return nil, fmt.Errorf("layer entry %q: given twice", e.name)
		}
		files[name] = e
		for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	names := make([]string, 0, len(files)+len(dirs))
	for d := range dirs {
		if _, clash := files[d]; clash {
			return nil, fmt.Errorf("layer entry %q: is also a parent directory", d)
		}
		names = append(names, d+"/")
	}
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		hdr := &tar.Header{Name: n, ModTime: mtime, Format: tar.FormatPAX, Uname: "root", Gname: "root"}
		if strings.HasSuffix(n, "/") {
			hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
		} else {
			e := files[n]
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, e.mode, int64(len(e.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("layer entry %q: %w", n, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(files[n].data); err != nil {
				return nil, fmt.Errorf("layer entry %q: %w", n, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing layer tar: %w", err)
	}
	raw := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(mt), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("creating layer: %w", err)
	}
	return layer, nil
}
