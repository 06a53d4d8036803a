package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Layer is one layer of a [FilesBuilder] image: files copied from the context
// directory to paths in the image. Put what changes rarely (dependencies, a JRE's
// libraries) in earlier layers, like Jib: a rebuild then pushes only the layers whose
// files changed.
type Layer struct {
	// Name describes the layer in the image history, e.g. "dependencies".
	Name  string
	Files []File
}

// File copies Src, a file or a directory relative to the context directory, to Dst,
// an absolute path in the image. A directory is copied with everything below it.
type File struct {
	Src string
	Dst string
	// Mode sets the permission bits of every file copied; 0 gives 0755 to files
	// with an executable bit and 0644 to the rest, whatever the host's umask.
	Mode fs.FileMode
}

// FilesBuilder puts files from a context directory into layers on a base image,
// with the entrypoint, command, environment, working directory, user, ports and
// labels the options give: enough to ship a JAR on a JRE base or static files on a
// web server base. Paths outside the context directory, and symlinks that lead out
// of it, are refused.
type FilesBuilder struct {
	opts   *options
	layers []Layer
}

// NewFiles returns a builder of the given layers, lowest first.
func NewFiles(layers []Layer, opts ...Option) (*FilesBuilder, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("files builder: %w", err)
	}
	if len(o.goOnly) > 0 {
		return nil, fmt.Errorf("files builder: %s apply to the Go builder only", strings.Join(o.goOnly, ", "))
	}
	if len(layers) == 0 {
		return nil, fmt.Errorf("files builder: no layers")
	}
	for i, l := range layers {
		if len(l.Files) == 0 {
			return nil, fmt.Errorf("files builder: layer %d (%q) has no files", i, l.Name)
		}
		for _, f := range l.Files {
			if !path.IsAbs(f.Dst) {
				return nil, fmt.Errorf("files builder: layer %q: destination %q is not an absolute path", l.Name, f.Dst)
			}
		}
	}
	own := make([]Layer, len(layers))
	for i, l := range layers {
		own[i] = Layer{Name: l.Name, Files: slices.Clone(l.Files)}
	}
	return &FilesBuilder{opts: o, layers: own}, nil
}

// Build reads the files from src.Dir (default ".") and returns one image per
// platform, all with the same layers. src.Path must be empty.
func (b *FilesBuilder) Build(ctx context.Context, src Source) (v1.ImageIndex, error) {
	o := b.opts
	if src.Path != "" {
		return nil, fmt.Errorf("files builder: Source.Path %q: the files builder takes its files from its layers", src.Path)
	}
	dir, err := sourceDir(src.Dir)
	if err != nil {
		return nil, err
	}
	src.Dir = dir
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("context dir %s: %w", dir, err)
	}
	defer root.Close()
	specs := make([]*layerSpec, 0, len(b.layers))
	for _, l := range b.layers {
		var entries []entry
		for _, f := range l.Files {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			es, err := collect(root, f)
			if err != nil {
				return nil, fmt.Errorf("layer %q: %w", l.Name, err)
			}
			entries = append(entries, es...)
		}
		specs = append(specs, newLayerSpec("shipkit build files: "+l.Name, entries))
	}
	base, err := o.base.Load(ctx)
	if err != nil {
		return nil, err
	}
	images, err := o.forEachPlatform(ctx, "files", func(_ context.Context, p v1.Platform) (v1.Image, error) {
		return o.assemble(base, p, src, specs, nil)
	})
	if err != nil {
		return nil, err
	}
	return o.index(images, base, src)
}

// collect reads the file or directory f.Src inside root into layer entries.
func collect(root *os.Root, f File) ([]entry, error) {
	src := filepath.Clean(f.Src)
	if !filepath.IsLocal(src) {
		return nil, fmt.Errorf("%q is outside the context dir", f.Src)
	}
	info, err := root.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", f.Src, explainEscape(err))
	}
	if !info.IsDir() {
		e, err := readEntry(root, src, f.Dst, f.Mode)
		if err != nil {
			return nil, err
		}
		return []entry{e}, nil
	}
	var entries []entry
	err = fs.WalkDir(root.FS(), filepath.ToSlash(src), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("%q: %w", p, explainEscape(err))
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(src, filepath.FromSlash(p))
		if err != nil {
			return fmt.Errorf("%q: %w", p, err)
		}
		e, err := readEntry(root, filepath.FromSlash(p), path.Join(f.Dst, filepath.ToSlash(rel)), f.Mode)
		if err != nil {
			return err
		}
		entries = append(entries, e)
		return nil
	})
	return entries, err
}

// readEntry reads one file (following a symlink only within root) into an entry.
func readEntry(root *os.Root, name, dst string, mode fs.FileMode) (entry, error) {
	info, err := root.Stat(name)
	if err != nil {
		return entry{}, fmt.Errorf("%q: %w", name, explainEscape(err))
	}
	if info.IsDir() {
		return entry{}, fmt.Errorf("%q: a symlink to a directory is not supported; name the directory itself", name)
	}
	if !info.Mode().IsRegular() {
		return entry{}, fmt.Errorf("%q: not a regular file (%s)", name, info.Mode().Type())
	}
	data, err := root.ReadFile(name)
	if err != nil {
		return entry{}, fmt.Errorf("%q: %w", name, explainEscape(err))
	}
	if mode == 0 {
		mode = 0o644
		if info.Mode().Perm()&0o111 != 0 {
			mode = 0o755
		}
	}
	return entry{name: dst, mode: int64(mode.Perm()), data: data}, nil
}

// explainEscape names the cause when os.Root refused a path that leads outside it.
func explainEscape(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent" {
		return fmt.Errorf("leads outside the context dir (a symlink or ..): %w", err)
	}
	return err
}
