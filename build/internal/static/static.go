// Package static holds the filesystem of build.Static, the default base image:
// Debian's CA bundle and zoneinfo tree, vendored in files/ by update.sh from the
// packages named in files/VERSIONS with their copyright files, and the /etc/passwd,
// /etc/group and /etc/nsswitch.conf of a nonroot user 65532, as distroless static
// has them.
package static

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"embed"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

//go:embed files
var files embed.FS

// UID and GID of the nonroot user, as in distroless and Chainguard images.
const (
	NonrootUID = 65532
	NonrootGID = 65532
)

// Paths of the files an HTTPS client and the time package read.
const (
	CertFile    = "/etc/ssl/certs/ca-certificates.crt"
	ZoneinfoDir = "/usr/share/zoneinfo"
)

const (
	passwd = `root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
`
	group = `root:x:0:
nobody:x:65534:
nonroot:x:65532:
`
	// nsswitch.conf makes the Go resolver (and glibc) read /etc/hosts before DNS.
	nsswitch = "hosts: files dns\nnetworks: files\n"
)

// File is one entry of the base's filesystem.
type File struct {
	// Path is absolute, e.g. "/etc/passwd".
	Path string
	// Mode holds the permission bits, and the sticky bit (0o1000) for /tmp.
	Mode int64
	// Dir is set for a directory, Link (the target) for a symlink; else it is a
	// regular file holding Data.
	Dir  bool
	Link string
	Data []byte
	// UID and GID own the entry.
	UID, GID int
}

// Files returns the entries of the base's filesystem, directories included, in no
// particular order.
func Files() ([]File, error) {
	out := []File{
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte(passwd)},
		{Path: "/etc/group", Mode: 0o644, Data: []byte(group)},
		{Path: "/etc/nsswitch.conf", Mode: 0o644, Data: []byte(nsswitch)},
		{Path: "/tmp", Mode: 0o1777, Dir: true},
		{Path: "/root", Mode: 0o700, Dir: true},
		{Path: "/home/nonroot", Mode: 0o700, Dir: true, UID: NonrootUID, GID: NonrootGID},
	}
	for _, f := range []struct{ src, dst string }{
		{"ca-certificates.crt", CertFile},
		{"ca-certificates.copyright", "/usr/share/doc/ca-certificates/copyright"},
		{"tzdata.copyright", "/usr/share/doc/tzdata/copyright"},
	} {
		data, err := files.ReadFile("files/" + f.src)
		if err != nil {
			return nil, err
		}
		out = append(out, File{Path: f.dst, Mode: 0o644, Data: data})
	}
	zones, err := zoneinfo()
	if err != nil {
		return nil, fmt.Errorf("vendored zoneinfo.tar.gz: %w", err)
	}
	return append(out, zones...), nil
}

// zoneinfo reads the vendored tar of tzdata's /usr/share/zoneinfo tree.
func zoneinfo() ([]File, error) {
	raw, err := files.ReadFile("files/zoneinfo.tar.gz")
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	var out []File
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		p := path.Clean("/" + h.Name)
		if !strings.HasPrefix(p, ZoneinfoDir+"/") {
			return nil, fmt.Errorf("%s: outside %s", h.Name, ZoneinfoDir)
		}
		f := File{Path: p, Mode: h.Mode & 0o7777}
		switch h.Typeflag {
		case tar.TypeDir:
			f.Dir = true
		case tar.TypeSymlink:
			f.Link = h.Linkname
		case tar.TypeReg:
			if f.Data, err = io.ReadAll(tr); err != nil {
				return nil, fmt.Errorf("%s: %w", h.Name, err)
			}
		default:
			return nil, fmt.Errorf("%s: unexpected tar entry type %q", h.Name, h.Typeflag)
		}
		out = append(out, f)
	}
}

// Versions returns the Debian packages the vendored files come from, as
// "package version" lines.
func Versions() ([]string, error) {
	raw, err := files.ReadFile("files/VERSIONS")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, nil
}
