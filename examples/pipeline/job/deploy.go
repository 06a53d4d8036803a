package job

import (
	"context"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/render"
)

// manifests holds the example service's kustomize base and its demo overlay.
//
//go:embed deploy
var manifests embed.FS

// overlayDir is the embedded overlay, as the in-memory file system holds it.
const overlayDir = "/deploy/overlays/demo"

// placeholderImage is the image name the embedded manifests use for the service.
const placeholderImage = "hello"

// render renders the overlay with the pushed image pinned by digest.
func (j *Job) render(ctx context.Context) (string, error) {
	if err := j.need("pushed image", j.Digest.DigestStr() != ""); err != nil {
		return "", err
	}
	fsys, dir, err := j.kustomization()
	if err != nil {
		return "", err
	}
	objs, err := render.Kustomize(fsys, dir,
		render.WithImages(j.Digest),
		render.WithApp(render.App{Name: filepath.Base(j.cfg.Source), ManagedBy: "shipkit"}),
		render.WithRevision(strings.TrimPrefix(short(j.Digest.DigestStr()), "sha256:")),
	).Render(ctx)
	if err != nil {
		return "", err
	}
	j.Objects = objs
	kinds := make([]string, len(objs))
	for i, o := range objs {
		kinds[i] = o.GetKind()
	}
	return fmt.Sprintf("%d objects (%s), image pinned to %s", len(objs), strings.Join(kinds, ", "),
		short(j.Digest.DigestStr())), nil
}

// kustomization returns the file system and directory to render: Overlay on disk, or
// the embedded overlay under a root kustomization that maps the placeholder image
// to the pushed repository and sets Namespace.
func (j *Job) kustomization() (filesys.FileSystem, string, error) {
	if j.cfg.Overlay != "" {
		return filesys.MakeFsOnDisk(), j.cfg.Overlay, nil
	}
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
		return nil, "", fmt.Errorf("embedded manifests: %w", err)
	}
	root := fmt.Sprintf("resources:\n- %s\nimages:\n- name: %s\n  newName: %s\n",
		path.Join("..", strings.TrimPrefix(overlayDir, "/")), placeholderImage, j.Repo.String())
	if j.cfg.Namespace != "" {
		root += "namespace: " + j.cfg.Namespace + "\n"
	}
	if err := mem.WriteFile("/pipeline/kustomization.yaml", []byte(root)); err != nil {
		return nil, "", err
	}
	return mem, "/pipeline", nil
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

// deploy applies the objects when a kubeconfig is given (or plans them, with
// DryRun), else says what it would create in an empty cluster.
func (j *Job) deploy(ctx context.Context) (string, error) {
	if err := j.need("gate decision", j.Decision != nil && j.Decision.Allowed()); err != nil {
		return "", err
	}
	if j.cfg.Kubeconfig == "" {
		cs := &deploy.ChangeSet{}
		for _, o := range j.Objects {
			cs.Append(deploy.Change{Object: deploy.RefOf(o), Action: deploy.Created})
		}
		j.Changes = cs
		return fmt.Sprintf("plan without a cluster: %d objects to create (give -kubeconfig to apply)", len(j.Objects)), nil
	}
	rc, err := j.restConfig()
	if err != nil {
		return "", err
	}
	objs := j.Objects
	if j.cfg.Prometheus != "" {
		client, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return "", err
		}
		if objs, j.release, err = j.canaryObjects(ctx, client); err != nil {
			return "", err
		}
	}
	m, err := apply.New(rc, apply.Options{
		FieldManager: "shipkit-pipeline",
		Wait:         j.cfg.Wait,
		Force:        j.release != nil, // take the canary's fields back from the last rollout
		Logger:       j.log,
		Observer:     j.obs,
	})
	if err != nil {
		return "", err
	}
	if j.cfg.DryRun {
		if j.Changes, err = m.Plan(ctx, j.Objects); err != nil {
			return "", err
		}
		return "plan (server-side dry run): " + countChanges(j.Changes), nil
	}
	if j.Changes, err = m.Apply(ctx, objs); err != nil {
		return "", err
	}
	if j.release != nil {
		return fmt.Sprintf("applied the canary beside stable: %s; healthy", countChanges(j.Changes)), nil
	}
	return fmt.Sprintf("applied: %s; healthy", countChanges(j.Changes)), nil
}

// restConfig reads the cluster of Kubeconfig and Context.
func (j *Job) restConfig() (*rest.Config, error) {
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: j.cfg.Kubeconfig}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: j.cfg.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", j.cfg.Kubeconfig, err)
	}
	return cfg, nil
}

// countChanges says "2 created, 1 unchanged".
func countChanges(cs *deploy.ChangeSet) string {
	var parts []string
	for _, a := range []deploy.Action{deploy.Created, deploy.Configured, deploy.Unchanged, deploy.Pruned} {
		if n := cs.Count(a); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, a))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// WriteChanges writes what the deploy stage did or would do, one object a line,
// with the field diffs of a plan.
func (j *Job) WriteChanges(w io.Writer) error {
	if j.Changes == nil {
		return nil
	}
	_, err := io.WriteString(w, j.Changes.String())
	return err
}
