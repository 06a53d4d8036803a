// Package render turns a kustomize directory or plain YAML files into the objects a
// deploy applies, as []*unstructured.Unstructured: every image the build produced is
// pinned to its digest (by repository with [WithImages], or by the name the
// manifests write with [WithImage], strictly: a pin that pins nothing is an error),
// the standard app.kubernetes.io labels are set and each object carries the
// revision it belongs to. Images are found by deploy.Walk, the walker the gate and
// the policy checks share. [Write] prints objects as a YAML stream.
//
// Sources are read through a kustomize [filesys.FileSystem], so a directory on disk
// ([filesys.MakeFsOnDisk]) and one built in memory ([filesys.MakeFsInMemory]) render
// the same way. A [Renderer] implements [deploy.Renderer].
package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/shipkit/shipkit/deploy"
)

// RevisionAnnotation is the annotation [WithRevision] sets on every object.
const RevisionAnnotation = deploy.RevisionAnnotation

// The standard labels [WithApp] sets (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/).
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelVersion   = "app.kubernetes.io/version"
	LabelComponent = "app.kubernetes.io/component"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelManagedBy = "app.kubernetes.io/managed-by"
)

// App holds the values of the standard app.kubernetes.io labels. Empty fields set no
// label.
type App struct {
	Name      string // app.kubernetes.io/name
	Instance  string // app.kubernetes.io/instance
	Version   string // app.kubernetes.io/version
	Component string // app.kubernetes.io/component
	PartOf    string // app.kubernetes.io/part-of
	ManagedBy string // app.kubernetes.io/managed-by
}

func (a App) labels() map[string]string {
	l := map[string]string{}
	for k, v := range map[string]string{
		LabelName: a.Name, LabelInstance: a.Instance, LabelVersion: a.Version,
		LabelComponent: a.Component, LabelPartOf: a.PartOf, LabelManagedBy: a.ManagedBy,
	} {
		if v != "" {
			l[k] = v
		}
	}
	return l
}

// Option configures a [Renderer].
type Option func(*options)

type options struct {
	pins     pins
	app      App
	revision string
}

// WithImages pins images to digests: every image (of containers and image volumes,
// in every pod spec deploy.Walk finds: workloads, custom resources, Argo and
// Tekton) whose repository is a digest's repository is replaced by that
// repository at the digest. Repositories match after normalisation, so "nginx"
// matches "index.docker.io/library/nginx@sha256:…"; the image keeps the spelling of
// the manifest and loses its tag, as kustomize's images transformer does. A digest
// that pins no image, a name without a digest, or two digests for one repository
// fail Render (errors.Is [ErrImageNotPinned], [ErrNoDigest], [ErrImageConflict]),
// unless [AllowUnusedImages].
func WithImages(digests ...name.Digest) Option {
	return func(o *options) { o.pins.digests = append(o.pins.digests, digests...) }
}

// WithImage maps an image as the manifests write it to a digest, like kustomize's
// images: (name, newName, digest) and Flux's spec.images: every use of written (a
// repository, "hello" or "ghcr.io/acme/web", matched after normalisation; with a
// tag, "hello:placeholder", only uses with that tag) becomes d's full repository
// at d's digest. A mapping that pins no image or maps to a name without a digest
// fails Render, naming it (errors.Is [ErrImageNotPinned], [ErrNoDigest]), unless
// [AllowUnusedImages].
func WithImage(written string, d name.Digest) Option {
	return func(o *options) { o.pins.mappings = append(o.pins.mappings, mapping{written: written, digest: d}) }
}

// AllowUnusedImages lets [WithImages] digests and [WithImage] mappings pin nothing,
// for callers that pass one list of images to several sources. A mapping to a name
// without a digest is still an error.
func AllowUnusedImages() Option { return func(o *options) { o.pins.allowUnused = true } }

// WithApp sets the standard app.kubernetes.io labels on every object and on the pod
// templates of workloads. Selectors are never changed, since they are immutable in
// most workloads.
func WithApp(app App) Option { return func(o *options) { o.app = app } }

// WithRevision sets the [RevisionAnnotation] on every object (not on pod templates,
// so a new revision that changes nothing else restarts no pod).
func WithRevision(rev string) Option { return func(o *options) { o.revision = rev } }

// Renderer renders one source. It implements [deploy.Renderer]; a Renderer is
// immutable and safe for concurrent use when its file system is.
type Renderer struct {
	fs      filesys.FileSystem
	dir     string   // kustomization root, for Kustomize
	files   []string // plain YAML files, for Files
	options options
}

var _ deploy.Renderer = (*Renderer)(nil)

// Kustomize returns a Renderer for the kustomization in dir of fsys (nil means the
// disk). Plugins and remote bases are disabled and loading is restricted to dir, so
// rendering reads nothing outside it and runs nothing.
func Kustomize(fsys filesys.FileSystem, dir string, opts ...Option) *Renderer {
	return newRenderer(fsys, dir, nil, opts)
}

// Files returns a Renderer for plain YAML or JSON files of fsys (nil means the disk),
// each holding one or more documents separated by "---". A path that is a directory
// stands for its *.yaml, *.yml and *.json files, in name order, not recursively.
func Files(fsys filesys.FileSystem, paths []string, opts ...Option) *Renderer {
	return newRenderer(fsys, "", paths, opts)
}

func newRenderer(fsys filesys.FileSystem, dir string, files []string, opts []Option) *Renderer {
	if fsys == nil {
		fsys = filesys.MakeFsOnDisk()
	}
	r := &Renderer{fs: fsys, dir: dir, files: append([]string(nil), files...)}
	for _, o := range opts {
		o(&r.options)
	}
	return r
}

// Render reads the source and returns its objects, in the source's order, with the
// options applied.
func (r *Renderer) Render(ctx context.Context) ([]*unstructured.Unstructured, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var (
		objs []*unstructured.Unstructured
		err  error
	)
	if r.files != nil {
		objs, err = r.renderFiles(ctx)
	} else {
		objs, err = r.renderKustomize()
	}
	if err != nil {
		return nil, err
	}
	if err := r.options.apply(objs); err != nil {
		return nil, err
	}
	return objs, nil
}

func (r *Renderer) renderKustomize() (objs []*unstructured.Unstructured, err error) {
	// kustomize is a big library fed with user input: make sure a bug in it surfaces
	// as an error, not a crash of the program that embeds us.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("render: kustomize %s: internal error: %v", r.dir, p)
		}
	}()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(r.fs, r.dir)
	if err != nil {
		return nil, fmt.Errorf("render: kustomize %s: %w", r.dir, err)
	}
	for _, res := range m.Resources() {
		// Through JSON, so numbers are int64 or float64 as unstructured needs.
		data, err := res.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("render: kustomize %s: %s: %w", r.dir, res.CurId(), err)
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(data); err != nil {
			return nil, fmt.Errorf("render: kustomize %s: %s: %w", r.dir, res.CurId(), err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

func (r *Renderer) renderFiles(ctx context.Context) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, p := range r.files {
		paths := []string{p}
		if r.fs.IsDir(p) {
			var err error
			if paths, err = manifestsIn(r.fs, p); err != nil {
				return nil, err
			}
		}
		for _, f := range paths {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			data, err := r.fs.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("render: %w", err)
			}
			got, err := Parse(f, data)
			if err != nil {
				return nil, err
			}
			objs = append(objs, got...)
		}
	}
	return objs, nil
}

func manifestsIn(fsys filesys.FileSystem, dir string) ([]string, error) {
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	sort.Strings(names)
	var paths []string
	for _, n := range names {
		p := strings.TrimSuffix(dir, "/") + "/" + n
		if fsys.IsDir(p) {
			continue
		}
		switch {
		case strings.HasSuffix(n, ".yaml"), strings.HasSuffix(n, ".yml"), strings.HasSuffix(n, ".json"):
			paths = append(paths, p)
		}
	}
	return paths, nil
}

// Parse decodes the YAML or JSON documents of one file into objects. file names the
// source in errors. Empty documents are skipped; a List is expanded into its items. A
// document that is not an object with apiVersion, kind and metadata.name is an
// error naming the file and the document's position.
func Parse(file string, data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("render: %s: document %d: %w", file, doc, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if err := check(u); err != nil {
			return nil, fmt.Errorf("render: %s: document %d: %w", file, doc, err)
		}
		if u.IsList() {
			l, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("render: %s: document %d: %w", file, doc, err)
			}
			for i := range l.Items {
				if err := check(&l.Items[i]); err != nil {
					return nil, fmt.Errorf("render: %s: document %d: item %d: %w", file, doc, i+1, err)
				}
				objs = append(objs, &l.Items[i])
			}
			continue
		}
		objs = append(objs, u)
	}
}

// check returns an error when obj lacks apiVersion, kind or metadata.name.
func check(obj *unstructured.Unstructured) error {
	var missing []string
	if obj.GetAPIVersion() == "" {
		missing = append(missing, "apiVersion")
	}
	if obj.GetKind() == "" {
		missing = append(missing, "kind")
	}
	if !obj.IsList() && obj.GetName() == "" {
		missing = append(missing, "metadata.name")
	}
	if len(missing) > 0 {
		return fmt.Errorf("not a Kubernetes object: missing %s", strings.Join(missing, ", "))
	}
	return nil
}
