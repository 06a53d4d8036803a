package job

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/deploy/render/helm"
)

// manifests holds the example service's kustomize base and its demo overlay.
//
//go:embed deploy
var manifests embed.FS

// overlayDir is the embedded overlay, as the in-memory file system holds it.
const overlayDir = "/deploy/overlays/demo"

// placeholderImage is the image name the embedded manifests use for the service.
const placeholderImage = "hello"

// render renders the overlay with the pushed image pinned by digest: the embedded
// overlay's placeholder image mapped to it by name, or in the user's overlay (which
// names the pushed repository) by repository. The objects are then placed in the
// namespaces apply will use (placeNamespaces).
func (j *Job) render(ctx context.Context) (string, error) {
	if err := j.need("pushed image", j.Digest.DigestStr() != ""); err != nil {
		return "", err
	}
	labels := []render.Option{
		render.WithApp(render.App{Name: filepath.Base(j.cfg.Source), ManagedBy: "shipkit"}),
		render.WithRevision(strings.TrimPrefix(short(j.Digest.DigestStr()), "sha256:")),
	}
	var (
		objs  []*unstructured.Unstructured
		chart string
		err   error
	)
	if j.cfg.Chart != "" {
		objs, chart, err = j.renderChart(ctx, append(labels, render.WithImages(j.Digest)))
	} else {
		var (
			fsys filesys.FileSystem
			dir  string
			pin  render.Option
		)
		if fsys, dir, pin, err = j.kustomization(); err != nil {
			return "", err
		}
		objs, err = render.Kustomize(fsys, dir, append(labels, pin)...).Render(ctx)
	}
	if err != nil {
		return "", err
	}
	// Every later stage (gate, plan, apply, the canary) sees the objects where
	// apply puts them.
	placed, err := j.placeNamespaces(objs)
	if err != nil {
		return "", err
	}
	j.Objects = objs
	kinds := make([]string, len(objs))
	for i, o := range objs {
		kinds[i] = o.GetKind()
	}
	return fmt.Sprintf("%d objects (%s)%s, image pinned to %s%s", len(objs), strings.Join(kinds, ", "), chart,
		short(j.Digest.DigestStr()), placed), nil
}

// renderChart renders Chart with deploy/render/helm, the release named after the
// source directory, and says which chart it was (with its digest, from a registry).
func (j *Job) renderChart(ctx context.Context, opts []render.Option) ([]*unstructured.Unstructured, string, error) {
	r, err := helm.New(j.cfg.Chart, helm.WithReleaseName(filepath.Base(j.cfg.Source)),
		helm.WithNamespace(j.chartNamespace()), helm.WithValuesFiles(j.cfg.ChartValues...), helm.WithRender(opts...),
		helm.WithLogger(j.log))
	if err != nil {
		return nil, "", err
	}
	rel, err := r.RenderRelease(ctx)
	if err != nil {
		return nil, "", err
	}
	from := fmt.Sprintf(" from chart %s %s", rel.Chart.Name, rel.Chart.Version)
	if d := rel.Digest.DigestStr(); d != "" {
		from += " " + short(d)
	}
	return rel.Objects, from, nil
}

// chartNamespace is the namespace of a chart's release, where the objects the chart
// leaves without one go; "" without a chart.
func (j *Job) chartNamespace() string {
	switch {
	case j.cfg.Chart == "":
		return ""
	case j.cfg.Namespace != "":
		return j.cfg.Namespace
	default:
		return helm.DefaultNamespace
	}
}

// localChart is chart when it is on disk, "" for an oci:// reference.
func localChart(chart string) string {
	if strings.HasPrefix(chart, "oci://") {
		return ""
	}
	return chart
}

// kustomization returns the file system and directory to render and how to pin the
// pushed image: Overlay on disk by repository, or the embedded overlay with its
// placeholder image mapped to the pushed digest, under a kustomization that sets
// Namespace when one is given.
func (j *Job) kustomization() (filesys.FileSystem, string, render.Option, error) {
	if j.cfg.Overlay != "" {
		return filesys.MakeFsOnDisk(), j.cfg.Overlay, render.WithImages(j.Digest), nil
	}
	pin := render.WithImage(placeholderImage, j.Digest)
	mem := filesys.MakeFsInMemory()
	err := fs.WalkDir(manifests, "deploy", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := manifests.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile("/"+p, data)
	})
	if err != nil {
		return nil, "", nil, fmt.Errorf("embedded manifests: %w", err)
	}
	if j.cfg.Namespace == "" {
		return mem, overlayDir, pin, nil
	}
	// kustomize's namespace transformer knows which kinds are namespaced and renames
	// the overlay's Namespace object too.
	k := types.Kustomization{
		TypeMeta:  types.TypeMeta{APIVersion: types.KustomizationVersion, Kind: types.KustomizationKind},
		Resources: []string{path.Join("..", strings.TrimPrefix(overlayDir, "/"))},
		Namespace: j.cfg.Namespace,
	}
	data, err := yaml.Marshal(k)
	if err != nil {
		return nil, "", nil, fmt.Errorf("namespace kustomization: %w", err)
	}
	if err := mem.WriteFile("/pipeline/kustomization.yaml", data); err != nil {
		return nil, "", nil, err
	}
	return mem, "/pipeline", pin, nil
}

// WriteManifests writes the embedded kustomize base and overlay of the example
// service under dir, as deploy/base and deploy/overlays/demo, so that a CLI can
// render the same overlay. It returns the overlay's directory.
func WriteManifests(dir string) (string, error) {
	err := fs.WalkDir(manifests, "deploy", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := manifests.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("writing the embedded manifests: %w", err)
	}
	return filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(overlayDir, "/"))), nil
}
