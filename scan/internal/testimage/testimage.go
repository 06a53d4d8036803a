// Package testimage builds small container images in memory for the scan tests: a
// Debian 12 root with libc6 2.36-9+deb12u2 in the dpkg database, a Go binary linked
// against golang.org/x/text v0.3.6 and a Java archive; an Alpine 3.18 root with
// busybox and libcrypto3 in the apk database; and layers with hostile tar entries.
package testimage

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/require"
)

// OSRelease is /etc/os-release of Debian 12.
const OSRelease = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
`

// DpkgStatus is /var/lib/dpkg/status listing libc6 2.36-9+deb12u2 (source glibc).
const DpkgStatus = `Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12985
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u2
Description: GNU C Library: Shared libraries

`

// Paths of the files in the image built by [Debian].
const (
	GoBinaryPath = "/usr/local/bin/hello"
	JarPath      = "/opt/app/lib/commons-text-1.9.jar"
)

// File is one tar entry of a layer.
type File struct {
	Name     string
	Body     []byte
	Mode     int64
	Typeflag byte // tar.TypeReg when zero; tar.TypeGNUSparse for a sparse file (see Size)
	Linkname string
	// Size, when not zero, is the size the header claims. For a regular file that is
	// not len(Body), the header lies: a larger Size swallows the entries after it and
	// runs off the end of the stream (a truncated layer); a smaller one leaves the rest
	// of Body to be read as the next header. For tar.TypeGNUSparse, Size is the
	// file's real size and Body its only data, stored at the end: everything before
	// is a hole, so a file of any size takes len(Body) bytes in the layer.
	Size int64
}

// Tar returns the bytes of a tar stream holding files, in order.
func Tar(t testing.TB, files ...File) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.Name, Mode: f.Mode, Typeflag: f.Typeflag, Linkname: f.Linkname,
			ModTime: time.Unix(0, 0), Size: int64(len(f.Body)), Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		switch {
		case h.Typeflag == tar.TypeGNUSparse:
			require.NoError(t, tw.Flush())
			buf.Write(gnuSparse(t, f))
			continue
		case h.Typeflag != tar.TypeReg:
			h.Size = 0
		case f.Size != 0 && f.Size != h.Size:
			// archive/tar refuses to write a body that does not match its header,
			// so write the header alone and the body after it by hand.
			require.NoError(t, tw.Flush())
			h.Size = f.Size
			var hb bytes.Buffer
			require.NoError(t, tar.NewWriter(&hb).WriteHeader(h), f.Name)
			buf.Write(hb.Bytes())
			buf.Write(padded(f.Body))
			continue
		}
		require.NoError(t, tw.WriteHeader(h), f.Name)
		if h.Typeflag == tar.TypeReg {
			_, err := tw.Write(f.Body)
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

// padded returns b followed by zeros up to a multiple of the tar block size.
func padded(b []byte) []byte {
	return append(bytes.Clone(b), make([]byte, (blockSize-len(b)%blockSize)%blockSize)...)
}

const blockSize = 512

// gnuSparse returns an old-GNU sparse entry (type 'S', which archive/tar reads but
// does not write) of real size f.Size whose one data fragment, f.Body, ends the file.
func gnuSparse(t testing.TB, f File) []byte {
	t.Helper()
	require.Less(t, len(f.Name), 100, "sparse entry name")
	require.GreaterOrEqual(t, f.Size, int64(len(f.Body)), "sparse entry size")
	var b [blockSize]byte
	mode := f.Mode
	if mode == 0 {
		mode = 0o644
	}
	copy(b[0:100], f.Name)
	octal(b[100:108], mode)
	octal(b[108:116], 0)                  // uid
	octal(b[116:124], 0)                  // gid
	octal(b[124:136], int64(len(f.Body))) // bytes stored
	octal(b[136:148], 0)                  // mtime
	b[156] = tar.TypeGNUSparse
	copy(b[257:265], "ustar  \x00")                // GNU magic and version
	numeric(b[386:398], f.Size-int64(len(f.Body))) // fragment offset
	numeric(b[398:410], int64(len(f.Body)))        // fragment length
	numeric(b[483:495], f.Size)                    // real size
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return append(b[:], padded(f.Body)...)
}

// octal writes n as a NUL-terminated octal field.
func octal(field []byte, n int64) {
	s := strconv.FormatInt(n, 8)
	copy(field, strings.Repeat("0", len(field)-1-len(s))+s)
}

// numeric writes n as octal when it fits, else in GNU's base-256 form.
func numeric(field []byte, n int64) {
	if len(strconv.FormatInt(n, 8)) < len(field) {
		octal(field, n)
		return
	}
	clear(field)
	field[0] = 0x80
	for i := len(field) - 1; i > 0 && n > 0; i-- {
		field[i] = byte(n)
		n >>= 8
	}
}

// Layer returns a gzip layer of a tar stream.
func Layer(t testing.TB, tarBytes []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarBytes)), nil
	})
	require.NoError(t, err)
	return l
}

// Image returns a linux image of the given architecture with the layers.
func Image(t testing.TB, arch string, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: time.Unix(0, 0)}
	img, err = mutate.ConfigFile(img, cf)
	require.NoError(t, err)
	return img
}

var (
	binOnce sync.Once
	binData []byte
	binErr  error
)

// GoBinary returns a linux/amd64 Go binary whose build info names golang.org/x/text
// v0.3.6, built once per test process from testdata/gobin (a module with that
// dependency vendored, so nothing is downloaded).
func GoBinary(t testing.TB) []byte {
	t.Helper()
	binOnce.Do(func() {
		_, self, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(self), "..", "..", "testdata", "gobin")
		dir, err := os.MkdirTemp("", "shipkit-gobin-")
		if err != nil {
			binErr = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "hello")
		cmd := exec.CommandContext(context.Background(), "go", "build", "-trimpath", "-o", out, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=vendor -buildvcs=false",
			"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if b, err := cmd.CombinedOutput(); err != nil {
			binErr = &buildError{err: err, out: string(b)}
			return
		}
		binData, binErr = os.ReadFile(out)
	})
	require.NoError(t, binErr)
	return binData
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string {
	return "go build testdata/gobin: " + e.err.Error() + "\n" + e.out
}

// Jar returns a Java archive of org.apache.commons:commons-text 1.9 (manifest and
// pom.properties only).
func Jar(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name, body string) {
		w, err := zw.Create(name)
		require.NoError(t, err)
		_, err = io.WriteString(w, body)
		require.NoError(t, err)
	}
	add("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nImplementation-Title: Apache Commons Text\r\n"+
		"Implementation-Version: 1.9\r\nBundle-SymbolicName: org.apache.commons.commons-text\r\n\r\n")
	add("META-INF/maven/org.apache.commons/commons-text/pom.properties",
		"groupId=org.apache.commons\nartifactId=commons-text\nversion=1.9\n")
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// DebianFiles are the files of the Debian 12 base layer.
func DebianFiles() []File {
	return []File{
		{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "etc/os-release", Body: []byte(OSRelease)},
		{Name: "var/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "var/lib/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "var/lib/dpkg/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "var/lib/dpkg/status", Body: []byte(DpkgStatus)},
	}
}

// Debian returns an image of arch with two layers: the Debian 12 base (os-release,
// dpkg status with libc6) and an application layer with the Go binary and the jar.
func Debian(t testing.TB, arch string) v1.Image {
	t.Helper()
	base := Layer(t, Tar(t, DebianFiles()...))
	app := Layer(t, Tar(t,
		File{Name: "usr/local/bin/hello", Body: GoBinary(t), Mode: 0o755},
		File{Name: "opt/app/lib/commons-text-1.9.jar", Body: Jar(t)},
	))
	return Image(t, arch, base, app)
}

// Index returns an index of [Debian] images for amd64 and arm64.
func Index(t testing.TB) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		adds = append(adds, mutate.IndexAddendum{
			Add:        Debian(t, arch),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	return mutate.AppendManifests(empty.Index, adds...)
}

// AlpineOSRelease is /etc/os-release of Alpine 3.18.4.
const AlpineOSRelease = `NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.18.4
PRETTY_NAME="Alpine Linux v3.18"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
`

// ApkInstalled is /lib/apk/db/installed listing busybox 1.36.1-r2 and libcrypto3
// 3.1.1-r1 (origin openssl).
const ApkInstalled = `C:Q1pB6bwp7kQ/sgKd2Ha2KCxmBgR7Y=
P:busybox
V:1.36.1-r2
A:x86_64
S:509680
I:946176
T:Size optimized toolbox of many common UNIX utilities
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
m:Sören Tempel <soeren+alpine@soeren-tempel.net>
t:1689766786
c:59e7dfb2dea7b0b2bd8d4b0d8fa9aa5f5e5c9d62
D:so:libc.musl-x86_64.so.1
F:bin
R:busybox

C:Q1gM7PIhMPNRYm+Kkuz1SqPhGVBOQ=
P:libcrypto3
V:3.1.1-r1
A:x86_64
S:1705567
I:4464640
T:Crypto library from openssl
U:https://www.openssl.org/
L:Apache-2.0
o:openssl
m:Ariadne Conill <ariadne@dereferenced.org>
t:1685975106
c:8f3b1b6f7ac0a0f8e3e1d3c5c2ab0ef9e5e4c4a1
D:so:libc.musl-x86_64.so.1
p:so:libcrypto.so.3=3
F:lib
R:libcrypto.so.3

`

// AlpineFiles are the files of an Alpine 3.18 base layer: /etc/alpine-release,
// /etc/os-release and the apk database with busybox and libcrypto3.
func AlpineFiles() []File {
	return []File{
		{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "etc/alpine-release", Body: []byte("3.18.4\n")},
		{Name: "etc/os-release", Body: []byte(AlpineOSRelease)},
		{Name: "lib/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "lib/apk/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "lib/apk/db/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "lib/apk/db/installed", Body: []byte(ApkInstalled)},
	}
}

// Alpine returns an image of arch with two layers: the Alpine 3.18 base (see
// [AlpineFiles]) and an application layer with the Go binary.
func Alpine(t testing.TB, arch string) v1.Image {
	t.Helper()
	base := Layer(t, Tar(t, AlpineFiles()...))
	app := Layer(t, Tar(t, File{Name: "usr/local/bin/hello", Body: GoBinary(t), Mode: 0o755}))
	return Image(t, arch, base, app)
}
