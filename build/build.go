// Package build turns source into OCI images without a Docker daemon, reproducible
// to the digest, for several platforms at once, and publishes them by digest.
//
// A [Builder] builds a [Source] into a v1.ImageIndex with one image per platform.
// [GoBuilder] compiles a Go main package the way ko does: `go build -trimpath` with
// cgo off, the binary in its own layer on a base image, running as a non-root user.
// The default base, [Static], holds CA certificates, tzdata and a nonroot user, and
// is written in process; [Scratch], [RemoteBase] and others are options. Package
// build/publish pushes the index to any registry and returns its digest.
//
// Builds are reproducible: tar entries are sorted, owned by root with fixed
// permissions, and dated at the Unix epoch, or at SOURCE_DATE_EPOCH when set.
package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Builder builds source into an image index with one image per platform.
type Builder interface {
	Build(ctx context.Context, src Source) (v1.ImageIndex, error)
}

// Source is what a [Builder] builds.
type Source struct {
	// Dir is the context directory: for Go, a directory inside the main module.
	Dir string
	// Path names what to build inside Dir; for Go, a package pattern such as
	// "./cmd/server" (default ".").
	Path string
	// Repository and Revision describe where the source comes from (e.g. a git URL
	// and commit). When set they are recorded as the image's source and revision
	// annotations.
	Repository string
	Revision   string
}

// The OCI annotations a build records on each image and on the index.
const (
	AnnotationBaseName   = "org.opencontainers.image.base.name"
	AnnotationBaseDigest = "org.opencontainers.image.base.digest"
	AnnotationSource     = "org.opencontainers.image.source"
	AnnotationRevision   = "org.opencontainers.image.revision"
	AnnotationCreated    = "org.opencontainers.image.created"
)

// SourceDirError is the error of a Build whose Source.Dir does not exist or is not a
// directory, found before any tool runs (as go -C does). It unwraps to the cause:
// errors.Is(err, fs.ErrNotExist) holds for a directory that does not exist.
type SourceDirError struct {
	// Dir is the directory, made absolute.
	Dir string
	// Err is the cause.
	Err error
}

// Error names the directory and the cause.
func (e *SourceDirError) Error() string { return fmt.Sprintf("source dir %s: %v", e.Dir, e.Err) }

// Unwrap returns the cause.
func (e *SourceDirError) Unwrap() error { return e.Err }

// errNotDir is the cause of a [SourceDirError] for a path that is not a directory.
var errNotDir = errors.New("not a directory")

// sourceDir returns dir (default ".") made absolute, or a *SourceDirError when it is
// not a directory.
func sourceDir(dir string) (string, error) {
	if dir == "" {
		dir = "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", &SourceDirError{Dir: dir, Err: err}
	}
	info, err := os.Stat(abs)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the message already
		}
		return "", &SourceDirError{Dir: abs, Err: err}
	}
	if !info.IsDir() {
		return "", &SourceDirError{Dir: abs, Err: errNotDir}
	}
	return abs, nil
}
