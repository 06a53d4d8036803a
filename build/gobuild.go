package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// AppDir is where a [GoBuilder] puts the binary inside the image: /app/<name>.
const AppDir = "/app"

// GoBuilder builds a Go main package into an image per platform, like ko: no Docker
// daemon, `go build -trimpath` with cgo off, the binary alone in the top layer,
// owned by root and run as a non-root user.
type GoBuilder struct {
	opts *options

	distOnce sync.Once
	dist     map[string]bool
	distErr  error
}

// NewGo returns a Go builder. By default it builds linux/amd64 on [Scratch].
func NewGo(opts ...Option) (*GoBuilder, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("go builder: %w", err)
	}
	return &GoBuilder{opts: o}, nil
}

// Build compiles src.Path (default ".") inside src.Dir for every platform and
// returns the index of the images.
func (g *GoBuilder) Build(ctx context.Context, src Source) (v1.ImageIndex, error) {
	o := g.opts
	if src.Path == "" {
		src.Path = "."
	}
	dir, err := filepath.Abs(src.Dir)
	if err != nil {
		return nil, fmt.Errorf("source dir %q: %w", src.Dir, err)
	}
	src.Dir = dir
	if err := g.checkPlatforms(ctx); err != nil {
		return nil, err
	}
	importPath, err := mainPackage(ctx, src)
	if err != nil {
		return nil, err
	}
	base, err := o.base.Load(ctx)
	if err != nil {
		return nil, err
	}

	images, err := o.forEachPlatform(ctx, "go build", func(p v1.Platform) (v1.Image, error) {
		bin, err := g.compile(ctx, src, p)
		if err != nil {
			return nil, err
		}
		binPath := path.Join(AppDir, binaryName(importPath))
		layer := layerSpec{entries: []entry{{name: binPath, mode: 0o755, data: bin}}, createdBy: "shipkit build go " + importPath}
		return o.assemble(base, p, src, []layerSpec{layer}, []string{binPath})
	})
	if err != nil {
		return nil, err
	}
	return o.index(images, base, src)
}

// compile runs go build for one platform and returns the binary.
func (g *GoBuilder) compile(ctx context.Context, src Source, p v1.Platform) ([]byte, error) {
	o := g.opts
	out, cleanup, err := g.outputPath(src, p)
	if err != nil {
		return nil, fmt.Errorf("go build %s for %s: %w", src.Path, p, err)
	}
	defer cleanup()
	args := []string{"build", "-trimpath", "-o", out}
	if o.ldflags != "" {
		args = append(args, "-ldflags", o.ldflags)
	}
	if len(o.tags) > 0 {
		args = append(args, "-tags", strings.Join(o.tags, ","))
	}
	args = append(args, src.Path)
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Architecture == "arm" && strings.HasPrefix(p.Variant, "v") {
		env = append(env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	o.logger.DebugContext(ctx, "go build", "dir", src.Dir, "args", args, "platform", p.String())
	if _, err := goCmd(ctx, src.Dir, env, args...); err != nil {
		return nil, fmt.Errorf("go build %s for %s: %w", src.Path, p, err)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("go build %s for %s: reading binary: %w", src.Path, p, err)
	}
	return bin, nil
}

// outputPath returns where go build writes the binary: a path in the binary cache
// that depends on every input of the link (so an up-to-date binary there is reused),
// or a temporary file when the cache is off.
func (g *GoBuilder) outputPath(src Source, p v1.Platform) (string, func(), error) {
	o := g.opts
	if o.binCache == "" {
		tmp, err := os.MkdirTemp("", "shipkit-go-build-")
		if err != nil {
			return "", nil, err
		}
		return filepath.Join(tmp, "app"), func() { os.RemoveAll(tmp) }, nil
	}
	h := sha256.New()
	for _, s := range []string{src.Dir, src.Path, p.String(), o.ldflags, strings.Join(o.tags, ",")} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	dir := filepath.Join(o.binCache, hex.EncodeToString(h.Sum(nil))[:32])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("binary cache: %w", err)
	}
	return filepath.Join(dir, "app"), func() {}, nil
}

// checkPlatforms refuses a platform the Go toolchain cannot build, before any build.
func (g *GoBuilder) checkPlatforms(ctx context.Context) error {
	g.distOnce.Do(func() {
		out, err := goCmd(ctx, "", os.Environ(), "tool", "dist", "list")
		if err != nil {
			g.distErr = fmt.Errorf("listing Go platforms: %w", err)
			return
		}
		g.dist = map[string]bool{}
		for _, l := range strings.Fields(string(out)) {
			g.dist[l] = true
		}
	})
	if g.distErr != nil {
		return g.distErr
	}
	for _, p := range g.opts.platforms {
		if !g.dist[p.OS+"/"+p.Architecture] {
			return fmt.Errorf("platform %s: the Go toolchain cannot build it (see go tool dist list)", p)
		}
		if p.OS != "linux" {
			return fmt.Errorf("platform %s: only linux images are supported", p)
		}
	}
	return nil
}

// mainPackage returns the import path of src.Path, or an error when it is not a
// main package.
func mainPackage(ctx context.Context, src Source) (string, error) {
	out, err := goCmd(ctx, src.Dir, os.Environ(), "list", "-f", "{{.Name}}\t{{.ImportPath}}", src.Path)
	if err != nil {
		return "", fmt.Errorf("finding Go package %s in %s: %w", src.Path, src.Dir, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 {
		return "", fmt.Errorf("package pattern %s in %s names %d packages, want one main package", src.Path, src.Dir, len(lines))
	}
	name, importPath, _ := strings.Cut(lines[0], "\t")
	if name != "main" {
		return "", fmt.Errorf("package %s (%s) in %s is package %s, not a main package", src.Path, importPath, src.Dir, name)
	}
	return importPath, nil
}

// goCmd runs the go command and returns its standard output; on failure the error
// holds its standard error (the compiler's messages).
func goCmd(ctx context.Context, dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
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
