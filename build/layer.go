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

// entry is one regular file of a layer, or a directory or symlink when dir or link
// says so.
type entry struct {
	// name is the absolute path inside the image, e.g. "/app/server".
	name string
	mode int64
	data []byte
	// link is a symlink's target; dir marks a directory given with its own mode and
	// owner (the parents of other entries are added as 0755 root directories).
	link     string
	dir      bool
	uid, gid int
}

// reproducibleLayer writes entries into a layer whose bytes depend on nothing but
// the entries and mtime: parent directories are added, entries are sorted, and every
// header has the same time and the entry's numeric owner (root unless given).
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
		if e, given := files[d]; given {
			if !e.dir {
				return nil, fmt.Errorf("layer entry %q: is also a parent directory", d)
			}
			continue
		}
		names = append(names, d+"/")
	}
	for f, e := range files {
		if e.dir {
			f += "/"
		}
		names = append(names, f)
	}
	sort.Strings(names)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e, given := files[strings.TrimSuffix(n, "/")]
		hdr := &tar.Header{Name: n, ModTime: mtime, Format: tar.FormatPAX, Uid: e.uid, Gid: e.gid,
			Uname: userName(e.uid), Gname: userName(e.gid)}
		switch {
		case strings.HasSuffix(n, "/"):
			hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
			if given {
				hdr.Mode = e.mode
			}
		case e.link != "":
			hdr.Typeflag, hdr.Mode, hdr.Linkname = tar.TypeSymlink, 0o777, e.link
		default:
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, e.mode, int64(len(e.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("layer entry %q: %w", n, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
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

// userName names root in tar headers, as before owners other than root existed;
// other owners are numeric only.
func userName(id int) string {
	if id == 0 {
		return "root"
	}
	return ""
}
