package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// AppDir is where a [GoBuilder] puts the binary inside the image: /app/<name>.
const AppDir = "/app"

// GoBuilder builds a Go main package into an image per platform, like ko: no Docker
// daemon, `go build -trimpath` with cgo off, the binary alone in the top layer,
// owned by root and run as a non-root user.
//
// The go command runs in the caller's environment with everything that would make
// the binary depend on the host reset: GOFLAGS, GOEXPERIMENT and the
// micro-architecture levels (GOAMD64, GOARM64, GOARM, GO386) come from the platform's
// variant or Go's defaults. [WithGoEnv] sets variables on purpose.
type GoBuilder struct {
	opts *options
}

// NewGo returns a Go builder. By default it builds linux/amd64 on [Static]. A
// platform it cannot build (not linux, an architecture Go does not build for linux,
// a variant it does not know) is refused here, not at Build.
func NewGo(opts ...Option) (*GoBuilder, error) {
	o, err := newOptions(opts)
	if err == nil {
		err = checkGoPlatforms(o.platforms)
	}
	if err != nil {
		return nil, fmt.Errorf("go builder: %w", err)
	}
	return &GoBuilder{opts: o}, nil
}

// ErrNotMain is wrapped by the error of a Build whose package is not a main package
// (the error names the package).
var ErrNotMain = errors.New("not a main package")

// Build compiles src.Path (default ".") inside src.Dir (default ".") for every
// platform and returns the index of the images.
//
// The package is listed (is it a main package?) and the base is resolved while the
// platforms compile: neither needs the other, and the compiles are most of the
// time. A package that is not a main package, or a base that cannot be loaded,
// fails the build with that error and cancels the compiles.
func (g *GoBuilder) Build(ctx context.Context, src Source) (v1.ImageIndex, error) {
	o := g.opts
	if src.Path == "" {
		src.Path = "."
	}
	dir, err := sourceDir(src.Dir)
	if err != nil {
		return nil, err
	}
	src.Dir = dir
	// The compiles stop when the listing or the base fails; both the listing and the
	// base's loading run to their end. The base is loaded with ctx itself, not a
	// context that ends with Build: a registry base reads its layers lazily, with the
	// context it was loaded with, when the image is read later (by a push, an SBOM).
	compileCtx, stopCompiles := context.WithCancelCause(ctx)
	defer stopCompiles(nil)
	var importPath string
	var base *BaseImage
	var listErr, baseErr error
	listed, loaded := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(listed)
		if importPath, listErr = g.mainPackage(ctx, src); listErr != nil {
			stopCompiles(listErr)
		}
	}()
	go func() {
		defer close(loaded)
		if base, baseErr = o.base.Load(ctx); baseErr != nil {
			stopCompiles(baseErr)
		}
	}()
	// first returns the error the build reports: the package's, then the base's,
	// then err, as when they ran one after another.
	first := func(err error) error {
		<-listed
		<-loaded
		switch {
		case listErr != nil:
			return listErr
		case baseErr != nil:
			return baseErr
		}
		return err
	}
	images, err := o.forEachPlatform(compileCtx, "go build", func(ctx context.Context, p v1.Platform) (v1.Image, error) {
		bin, err := g.compile(ctx, src, p)
		if err != nil {
			return nil, err
		}
		for _, done := range []chan struct{}{listed, loaded} {
			select {
			case <-done:
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		}
		if listErr != nil || baseErr != nil {
			return nil, errors.Join(listErr, baseErr) // first reports the right one
		}
		binPath := path.Join(AppDir, binaryName(importPath))
		layer := newLayerSpec("shipkit build go "+importPath, []entry{{name: binPath, mode: 0o755, data: bin}})
		return o.assemble(base, p, src, []*layerSpec{layer}, []string{binPath})
	})
	if err := first(err); err != nil {
		return nil, err
	}
	return o.index(images, base, src)
}

// compile runs go build for one platform and returns the binary.
func (g *GoBuilder) compile(ctx context.Context, src Source, p v1.Platform) ([]byte, error) {
	o := g.opts
	args := []string{"build", "-trimpath"}
	if o.ldflags != "" {
		args = append(args, "-ldflags", o.ldflags)
	}
	if len(o.tags) > 0 {
		args = append(args, "-tags", strings.Join(o.tags, ","))
	}
	run := func(out string) error {
		o.logger.DebugContext(ctx, "go build", "dir", src.Dir, "package", src.Path, "platform", p.String())
		_, err := goCmd(ctx, src.Dir, g.env(p), append(args, "-o", out, src.Path)...)
		return err
	}
	var bin []byte
	var err error
	if o.binCache == "" {
		bin, err = buildTemp(run)
	} else {
		bin, err = buildCached(filepath.Join(o.binCache, g.cacheKey(src, p)), run)
	}
	if err != nil {
		return nil, fmt.Errorf("go build %s for %s: %w", src.Path, p, err)
	}
	return bin, nil
}

// cacheKey names the binary cache entry of one package and platform.
func (g *GoBuilder) cacheKey(src Source, p v1.Platform) string {
	o := g.opts
	h := sha256.New()
	for _, s := range []string{src.Dir, src.Path, p.String(), o.ldflags, strings.Join(o.tags, ","), strings.Join(o.goEnv, "\x00")} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// env returns the environment of the go command for platform p.
func (g *GoBuilder) env(p v1.Platform) []string {
	set := []string{"CGO_ENABLED=0", "GOOS=" + p.OS, "GOARCH=" + p.Architecture, "GOFLAGS=", "GOEXPERIMENT=",
		"GOAMD64=v1", "GOARM64=v8.0", "GOARM=7", "GO386=sse2"}
	set = append(set, goEnvFor(p)...)
	return setEnv(os.Environ(), append(set, g.opts.goEnv...))
}

// mainPackage returns the import path of src.Path, or an error when it is not a
// main package. It lists the package as the first platform sees it, with the build
// tags, so a main package behind a build constraint is found.
func (g *GoBuilder) mainPackage(ctx context.Context, src Source) (string, error) {
	args := []string{"list", "-f", "{{.Name}}\t{{.ImportPath}}"}
	if len(g.opts.tags) > 0 {
		args = append(args, "-tags", strings.Join(g.opts.tags, ","))
	}
	out, err := goCmd(ctx, src.Dir, g.env(g.opts.platforms[0]), append(args, src.Path)...)
	if err != nil {
		return "", fmt.Errorf("finding Go package %s in %s: %w", src.Path, src.Dir, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 {
		return "", fmt.Errorf("package pattern %s in %s names %d packages, want one main package", src.Path, src.Dir, len(lines))
	}
	name, importPath, _ := strings.Cut(lines[0], "\t")
	if name != "main" {
		return "", fmt.Errorf("package %s (%s) in %s is package %s: %w", src.Path, importPath, src.Dir, name, ErrNotMain)
	}
	return importPath, nil
}

// goCmd runs the go command and returns its standard output; on failure the error
// holds its standard error (the compiler's messages). Cancelling ctx ends the go
// command and every compiler and linker it started.
func goCmd(ctx context.Context, dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Env = dir, env
	killGroup(cmd)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("go %s: %w", args[0], ctx.Err())
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("%w:\n%s", err, msg)
		}
		return nil, err
	}
	return stdout.Bytes(), nil
}

// binaryName names the binary after the last element of the import path that is
// not a major version suffix (example.com/app/v2 -> app).
func binaryName(importPath string) string {
	name := path.Base(importPath)
	if len(name) > 1 && name[0] == 'v' && strings.Trim(name[1:], "0123456789") == "" && path.Dir(importPath) != "." {
		name = path.Base(path.Dir(importPath))
	}
	return name
}

// setEnv sets KEY=VALUE pairs in env, replacing earlier values of the same key.
func setEnv(env, set []string) []string {
	out := append([]string(nil), env...)
	for _, kv := range set {
		key, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, old := range out {
			if k, _, _ := strings.Cut(old, "="); k == key {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}
