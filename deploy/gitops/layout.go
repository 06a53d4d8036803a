package gitops

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/internal/option"
)

var (
	kindRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*$`)
	groupRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)
	// Object names: what Kubernetes allows for any kind (DNS subdomains, and the
	// ':' of RBAC names like system:controller:x), never a path separator.
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]*$`)
)

// maxName bounds a file name (most file systems allow 255 bytes).
const maxName = 250

// FileName returns the name of the file Write writes obj to (in the Writer's
// directory): "<namespace>_<kind>[.<group>]_<name>.yaml", or
// "<kind>[.<group>]_<name>.yaml" for a cluster-scoped object, the kind in lower
// case and the group left out for the core group. An object whose kind, group,
// namespace or name could not be a file name (a '/', say) is an error.
func FileName(obj *unstructured.Unstructured) (string, error) {
	ref := deploy.RefOf(obj)
	switch {
	case !kindRE.MatchString(ref.Kind):
		return "", fmt.Errorf("gitops: %s: kind %q is not a kind", ref, ref.Kind)
	case ref.Group != "" && !groupRE.MatchString(ref.Group):
		return "", fmt.Errorf("gitops: %s: group %q is not an API group", ref, ref.Group)
	case !nameRE.MatchString(ref.Name):
		return "", fmt.Errorf("gitops: %s: name %q cannot be a file name", ref, ref.Name)
	case ref.Namespace != "" && !nameRE.MatchString(ref.Namespace):
		return "", fmt.Errorf("gitops: %s: namespace %q cannot be a file name", ref, ref.Namespace)
	}
	kind := strings.ToLower(ref.Kind)
	if ref.Group != "" {
		kind += "." + ref.Group
	}
	name := kind + "_" + ref.Name + ".yaml"
	if ref.Namespace != "" {
		name = ref.Namespace + "_" + name
	}
	if len(name) > maxName {
		return "", fmt.Errorf("gitops: %s: file name longer than %d bytes", ref, maxName)
	}
	return name, nil
}

// content is what Write puts in the repository: the files of the Writer's
// directory (by name in it) and the files beside it (by path in the repository).
type content struct {
	dir   map[string][]byte
	extra map[string][]byte
}

func (w *Writer) render(objs []*unstructured.Unstructured) (*content, error) {
	c := &content{dir: map[string][]byte{}, extra: map[string][]byte{}}
	owner := map[string]deploy.ObjectRef{}
	for _, o := range objs {
		if o == nil {
			continue
		}
		ref := deploy.RefOf(o)
		if ref.Group == "" && ref.Kind == "Secret" && !w.o.secrets {
			return nil, fmt.Errorf("%w: %s", ErrSecret, ref)
		}
		name, err := FileName(o)
		if err != nil {
			return nil, err
		}
		if prev, ok := owner[name]; ok {
			return nil, fmt.Errorf("gitops: %s and %s both go to file %s", prev, ref, name)
		}
		owner[name] = ref
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, fmt.Errorf("gitops: %s: %w", ref, err)
		}
		c.dir[name] = b
	}
	if w.o.argo != nil {
		b, err := yaml.Marshal(w.o.argo.object(w.url, w.o.branch, w.dir))
		if err != nil {
			return nil, fmt.Errorf("gitops: Argo CD Application: %w", err)
		}
		c.extra[w.o.argo.file(w.dir)] = b
	}
	if w.o.flux != nil {
		src, ks := w.o.flux.objects(w.url, w.o.branch, w.dir)
		a, err := yaml.Marshal(src)
		if err != nil {
			return nil, fmt.Errorf("gitops: Flux GitRepository: %w", err)
		}
		b, err := yaml.Marshal(ks)
		if err != nil {
			return nil, fmt.Errorf("gitops: Flux Kustomization: %w", err)
		}
		c.extra[w.o.flux.file(w.dir)] = append(append(a, "---\n"...), b...)
	}
	return c, nil
}

// message writes the commit message: a subject, the gate's decision, the
// images and the objects.
func message(dir string, objs []*unstructured.Unstructured, d *deploy.Decision) string {
	var revs, images, refs []string
	for _, o := range objs {
		if o == nil {
			continue
		}
		refs = append(refs, deploy.RefOf(o).String())
		if r := o.GetAnnotations()[deploy.RevisionAnnotation]; r != "" && !slices.Contains(revs, r) {
			revs = append(revs, r)
		}
	}
	for _, u := range deploy.Images(objs) {
		if !slices.Contains(images, u.Image) {
			images = append(images, u.Image)
		}
	}
	slices.Sort(images)
	var b strings.Builder
	fmt.Fprintf(&b, "shipkit: release %s", dir)
	if len(revs) > 0 {
		fmt.Fprintf(&b, " revision %s", strings.Join(revs, ","))
	}
	fmt.Fprintf(&b, " (%d objects)\n\nGate: %s\n", len(refs), d.String())
	if len(images) > 0 {
		b.WriteString("\nImages:\n")
		for _, i := range images {
			fmt.Fprintf(&b, "  %s\n", i)
		}
	}
	if len(refs) > 0 {
		b.WriteString("\nObjects:\n")
		for _, r := range refs {
			fmt.Fprintf(&b, "  %s\n", r)
		}
	}
	return b.String()
}

// ArgoCDApplication asks Write to also write an Argo CD Application that syncs
// the Writer's directory (a directory source, not recursive) to a cluster.
type ArgoCDApplication struct {
	// Name is the Application's name (required).
	Name string
	// Namespace is the Application's namespace (default "argocd").
	Namespace string
	// Project is the Argo CD project (default "default").
	Project string
	// Server is the destination cluster's API server (default
	// https://kubernetes.default.svc, the cluster Argo CD runs in).
	Server string
	// DestinationNamespace is the namespace for objects that name none.
	DestinationNamespace string
	// Manual leaves sync to a person; by default the Application syncs
	// automatically, prunes and heals drift.
	Manual bool
	// File is where in the repository the Application goes (default the
	// directory's path and ".argocd.yaml", beside the directory, e.g.
	// envs/prod.argocd.yaml). It must be outside the directory.
	File string
}

// WithArgoCDApplication writes app as a file beside the directory in the same
// commit.
func WithArgoCDApplication(app ArgoCDApplication) Option {
	return func(o *options) { o.argo = &app }
}

func (a *ArgoCDApplication) file(dir string) string {
	if a.File != "" {
		return path.Clean(a.File)
	}
	return dir + ".argocd.yaml"
}

func (a *ArgoCDApplication) check(dir string) error {
	var l option.List
	if !nameRE.MatchString(a.Name) {
		l.Addf("gitops: WithArgoCDApplication: name %q", a.Name)
	}
	l.Add(checkExtra("WithArgoCDApplication", a.file(dir), dir))
	return l.Err("")
}

func (a *ArgoCDApplication) object(repo, branch, dir string) map[string]any {
	ns := or(a.Namespace, "argocd")
	dest := map[string]any{"server": or(a.Server, "https://kubernetes.default.svc")}
	if a.DestinationNamespace != "" {
		dest["namespace"] = a.DestinationNamespace
	}
	spec := map[string]any{
		"project":     or(a.Project, "default"),
		"source":      map[string]any{"repoURL": repo, "targetRevision": branch, "path": dir},
		"destination": dest,
	}
	if !a.Manual {
		spec["syncPolicy"] = map[string]any{"automated": map[string]any{"prune": true, "selfHeal": true}}
	}
	return map[string]any{
		"apiVersion": "argoproj.io/v1alpha1",
		"kind":       "Application",
		"metadata":   map[string]any{"name": a.Name, "namespace": ns},
		"spec":       spec,
	}
}

// FluxKustomization asks Write to also write a Flux GitRepository for the
// repository and a Kustomization that applies the Writer's directory.
type FluxKustomization struct {
	// Name names the GitRepository and the Kustomization (required).
	Name string
	// Namespace is their namespace (default "flux-system").
	Namespace string
	// SecretName names the Secret with the credentials Flux fetches with (none
	// by default: a public repository).
	SecretName string
	// TargetNamespace sets the namespace of the objects applied (default: as
	// they say).
	TargetNamespace string
	// Interval is how often Flux fetches and reconciles (default "5m").
	Interval string
	// File is where in the repository they go (default the directory's path and
	// ".flux.yaml", beside the directory). It must be outside the directory.
	File string
}

// WithFluxKustomization writes k as a file beside the directory in the same
// commit.
func WithFluxKustomization(k FluxKustomization) Option {
	return func(o *options) { o.flux = &k }
}

func (k *FluxKustomization) file(dir string) string {
	if k.File != "" {
		return path.Clean(k.File)
	}
	return dir + ".flux.yaml"
}

var intervalRE = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`)

func (k *FluxKustomization) check(dir string) error {
	var l option.List
	if !nameRE.MatchString(k.Name) {
		l.Addf("gitops: WithFluxKustomization: name %q", k.Name)
	}
	if k.Interval != "" && !intervalRE.MatchString(k.Interval) {
		l.Addf("gitops: WithFluxKustomization: interval %q is not a duration", k.Interval)
	}
	l.Add(checkExtra("WithFluxKustomization", k.file(dir), dir))
	return l.Err("")
}

func (k *FluxKustomization) objects(repo, branch, dir string) (src, ks map[string]any) {
	ns := or(k.Namespace, "flux-system")
	interval := or(k.Interval, "5m")
	srcSpec := map[string]any{"interval": interval, "url": repo, "ref": map[string]any{"branch": branch}}
	if k.SecretName != "" {
		srcSpec["secretRef"] = map[string]any{"name": k.SecretName}
	}
	ksSpec := map[string]any{
		"interval":  interval,
		"path":      "./" + dir,
		"prune":     true,
		"sourceRef": map[string]any{"kind": "GitRepository", "name": k.Name},
	}
	if k.TargetNamespace != "" {
		ksSpec["targetNamespace"] = k.TargetNamespace
	}
	src = map[string]any{
		"apiVersion": "source.toolkit.fluxcd.io/v1",
		"kind":       "GitRepository",
		"metadata":   map[string]any{"name": k.Name, "namespace": ns},
		"spec":       srcSpec,
	}
	ks = map[string]any{
		"apiVersion": "kustomize.toolkit.fluxcd.io/v1",
		"kind":       "Kustomization",
		"metadata":   map[string]any{"name": k.Name, "namespace": ns},
		"spec":       ksSpec,
	}
	return src, ks
}

// checkExtra refuses a file inside the directory (Write would remove it, and the
// sync tool would apply its own definition) or outside the repository.
func checkExtra(opt, file, dir string) error {
	if _, err := checkDir(file); err != nil {
		return fmt.Errorf("gitops: %s: file %q: must be a relative path in the repository", opt, file)
	}
	if file == dir || strings.HasPrefix(file, dir+"/") || strings.HasPrefix(dir, file+"/") {
		return fmt.Errorf("gitops: %s: file %q must be outside directory %s", opt, file, dir)
	}
	return nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
