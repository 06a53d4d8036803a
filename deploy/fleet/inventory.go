package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/observe"
)

// Target is one cluster to take an inventory of.
type Target struct {
	// Name identifies the cluster in the inventory (e.g. the kubeconfig context).
	Name string
	// Config reaches the cluster; it needs list on pods and on the workload kinds.
	Config *rest.Config
}

// Defaults of [InventoryOptions].
const (
	// DefaultPageSize is how many objects one list request asks for.
	DefaultPageSize = 500
	// DefaultMaxObjects bounds the pods and workloads read from one cluster.
	DefaultMaxObjects = 200_000
	// DefaultResolveConcurrency is how many tags are resolved at once.
	DefaultResolveConcurrency = 8
)

// ErrTooManyObjects is wrapped by a cluster's error when it holds more pods and
// workloads than [InventoryOptions.MaxObjects]: its inventory would be incomplete.
var ErrTooManyObjects = errors.New("too many objects")

// WorkloadResources are the kinds whose pod templates [TakeInventory] reads for
// what is declared, besides Pods for what runs: the core workloads, then the
// workload custom resources deploy.Walk interprets (listed only where the cluster
// serves them). Objects controlled by another object of these kinds (a
// Deployment's ReplicaSets, a CronJob's Jobs) are not counted as declaring: their
// owner declares, and their pods show what runs.
var WorkloadResources = []schema.GroupVersionResource{
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "apps", Version: "v1", Resource: "statefulsets"},
	{Group: "apps", Version: "v1", Resource: "daemonsets"},
	{Group: "apps", Version: "v1", Resource: "replicasets"},
	{Group: "batch", Version: "v1", Resource: "jobs"},
	{Group: "batch", Version: "v1", Resource: "cronjobs"},
	{Version: "v1", Resource: "replicationcontrollers"},
	{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"},
	{Group: "argoproj.io", Version: "v1alpha1", Resource: "workflows"},
	{Group: "argoproj.io", Version: "v1alpha1", Resource: "cronworkflows"},
	{Group: "argoproj.io", Version: "v1alpha1", Resource: "workflowtemplates"},
	{Group: "serving.knative.dev", Version: "v1", Resource: "services"},
	{Group: "tekton.dev", Version: "v1", Resource: "tasks"},
	{Group: "tekton.dev", Version: "v1", Resource: "pipelineruns"},
	{Group: "tekton.dev", Version: "v1", Resource: "taskruns"},
	{Group: "pkg.crossplane.io", Version: "v1", Resource: "providers"},
	{Group: "pkg.crossplane.io", Version: "v1", Resource: "configurations"},
	{Group: "pkg.crossplane.io", Version: "v1", Resource: "functions"},
}

var podsResource = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// InventoryOptions configure [TakeInventory]. The zero value lists
// [WorkloadResources] and Pods in [DefaultPageSize] pages, reads at most
// [DefaultMaxObjects] per cluster, works on [DefaultConcurrency] clusters at once
// and resolves tags anonymously through their registries ([RegistryResolver]).
// Values that cannot work (negative numbers) are refused before any cluster is
// contacted, with an error wrapping [deploy.ErrInvalidOption] naming each.
type InventoryOptions struct {
	// Resources replaces [WorkloadResources]. A resource the cluster does not serve
	// is skipped.
	Resources []schema.GroupVersionResource
	// Resolver turns images named by tag into digests; nil means
	// [RegistryResolver] with no options (anonymous, default transport). Pass
	// [RegistryResolver](remote.WithAuthFromKeychain(k), remote.WithTransport(t))
	// for private registries.
	Resolver Resolver
	// PageSize is how many objects one list request asks for (0: DefaultPageSize).
	PageSize int
	// MaxObjects bounds the pods and workloads read per cluster (0:
	// DefaultMaxObjects); past it the cluster fails with [ErrTooManyObjects].
	MaxObjects int
	// Concurrency bounds how many clusters are read at once (0: DefaultConcurrency).
	Concurrency int
	// ResolveConcurrency bounds how many tags are resolved at once (0:
	// DefaultResolveConcurrency).
	ResolveConcurrency int
	// Observer receives the step (stage deploy, step "inventory"): a progress event
	// per cluster as it ends. nil: none.
	Observer observe.Observer
}

func (o InventoryOptions) validate(targets []Target) error {
	var bad option.List
	for _, f := range []struct {
		name string
		v    int
	}{{"PageSize", o.PageSize}, {"MaxObjects", o.MaxObjects}, {"Concurrency", o.Concurrency}, {"ResolveConcurrency", o.ResolveConcurrency}} {
		if f.v < 0 {
			bad.Addf("%s %d is negative (0 means the default)", f.name, f.v)
		}
	}
	var others []error
	seen := map[string]bool{}
	for i, t := range targets {
		switch {
		case t.Name == "":
			others = append(others, fmt.Errorf("cluster %d has no name", i))
		case t.Config == nil:
			others = append(others, fmt.Errorf("cluster %s has no REST config", t.Name))
		case seen[t.Name]:
			others = append(others, fmt.Errorf("cluster %s appears twice", t.Name))
		}
		seen[t.Name] = true
	}
	return bad.Err("fleet: inventory", others...)
}

// Resolver resolves an image named by tag to the digest the tag points to now.
type Resolver interface {
	Resolve(ctx context.Context, ref name.Reference) (name.Digest, error)
}

// Inventory is what runs and what is declared in a fleet of clusters, by image
// digest. It is plain data: it encodes to JSON and back.
type Inventory struct {
	// Clusters says, per cluster in the order given, what was read or why not.
	Clusters []ClusterInventory `json:"clusters"`
	// Images are the images named by digest (written so, reported by a pod's
	// status, or resolved from a tag), deduplicated across clusters, sorted by
	// reference; each with every place it is used.
	Images []Image `json:"images"`
	// Unresolved are the image references that could not be turned into a digest
	// (a tag the registry does not resolve, a reference that does not parse, an
	// image deploy.Walk cannot interpret), each with its uses and why.
	Unresolved []Unresolved `json:"unresolved,omitempty"`
}

// ClusterInventory is what [TakeInventory] read from one cluster.
type ClusterInventory struct {
	// Name is the cluster's name.
	Name string `json:"name"`
	// Pods and Workloads count the objects read.
	Pods      int `json:"pods"`
	Workloads int `json:"workloads"`
	// Resources are the workload resources the cluster serves and that were read.
	Resources []string `json:"resources,omitempty"`
	// Error says why the cluster could not be read (in full); empty when it was.
	// What was read before the failure is not in the inventory.
	Error string `json:"error,omitempty"`
	// Err is the same error, for errors.Is (not encoded).
	Err error `json:"-"`
}

// Image is one image, named by digest, and where it is used.
type Image struct {
	// Digest is the image's reference by digest (repository@sha256:...), the
	// repository normalised (index.docker.io/library/nginx).
	Digest string `json:"digest"`
	// Uses lists where it runs or is declared, sorted.
	Uses []Use `json:"uses"`
}

// Ref parses [Image.Digest].
func (i Image) Ref() (name.Digest, error) { return name.NewDigest(i.Digest) }

// Use is one place an image runs or is declared.
type Use struct {
	// Cluster names the cluster.
	Cluster string `json:"cluster"`
	// Workload is the object that owns the pods (a Deployment, not its ReplicaSet,
	// followed through controller ownerReferences), or that declares the image; a
	// Pod with no owner is its own workload.
	Workload deploy.ObjectRef `json:"workload"`
	// Container names the container (or volume, for an image volume).
	Container string `json:"container,omitempty"`
	// Kind says where the image sits (container, volume, package).
	Kind deploy.ImageKind `json:"kind"`
	// Running is set for a use seen in a pod, clear for a declaration in a
	// workload's template.
	Running bool `json:"running"`
	// Pods counts the pods of the workload running the image in the container.
	Pods int `json:"pods,omitempty"`
	// Image is the reference as the pod or object writes it (for a running
	// container whose status named a digest, the status's imageID).
	Image string `json:"image"`
}

// Unresolved is an image reference that could not be turned into a digest.
type Unresolved struct {
	// Image is the reference as written.
	Image string `json:"image"`
	// Reason says why it was not resolved.
	Reason string `json:"reason"`
	// Uses lists where it is used.
	Uses []Use `json:"uses"`
}

// Err returns the clusters' errors joined, nil when every cluster was read.
func (inv *Inventory) Err() error {
	var errs []error
	for _, c := range inv.Clusters {
		if c.Err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", c.Name, c.Err))
		} else if c.Error != "" {
			errs = append(errs, fmt.Errorf("cluster %s: %s", c.Name, c.Error))
		}
	}
	return errors.Join(errs...)
}

// TakeInventory reads every cluster (at most [InventoryOptions.Concurrency] at
// once) and returns its images by digest: what runs, from each Pod's
// status.containerStatuses, initContainerStatuses and ephemeralContainerStatuses
// (the imageID the kubelet reports; when it names no digest, the image the pod
// spec names), and what is declared, from the pod templates of the workloads
// (deploy.Walk, the one container walker, finds the images of Pods and
// workloads alike). Tags are resolved to digests with the Resolver, once per tag;
// those it cannot resolve are listed in [Inventory.Unresolved], never dropped.
//
// A cluster that cannot be read is reported in its [ClusterInventory] and the rest
// continue; the error is for options and targets that cannot work, and for the
// caller's context ending. Lists are paged and each cluster bounded
// ([InventoryOptions.MaxObjects]).
func TakeInventory(ctx context.Context, targets []Target, opts InventoryOptions) (*Inventory, error) {
	if err := opts.validate(targets); err != nil {
		return nil, err
	}
	opts.PageSize = cmp.Or(opts.PageSize, DefaultPageSize)
	opts.MaxObjects = cmp.Or(opts.MaxObjects, DefaultMaxObjects)
	if opts.Resolver == nil {
		opts.Resolver = RegistryResolver()
	}
	step := observe.StartStep(opts.Observer, observe.StageDeploy, "inventory", int64(len(targets)),
		fmt.Sprintf("inventory of %d clusters", len(targets)))
	inv := &Inventory{Clusters: make([]ClusterInventory, len(targets))}
	found := make([][]found, len(targets))
	sem := make(chan struct{}, cmp.Or(opts.Concurrency, DefaultConcurrency))
	var wg sync.WaitGroup
	for i, t := range targets {
		inv.Clusters[i].Name = t.Name
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, step.Fail(fmt.Errorf("fleet: inventory: %w", ctx.Err()))
		}
		wg.Go(func() {
			defer func() { <-sem }()
			ci, f, err := readCluster(ctx, t, opts)
			ci.Name = t.Name
			if err != nil {
				ci.Err, ci.Error = err, err.Error()
				f = nil
				step.Progress(fmt.Sprintf("%s: %v", t.Name, err))
			} else {
				step.Progress(fmt.Sprintf("%s: %d pods, %d workloads", t.Name, ci.Pods, ci.Workloads))
			}
			inv.Clusters[i], found[i] = ci, f
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, step.Fail(fmt.Errorf("fleet: inventory: %w", err))
	}
	if err := resolveAll(ctx, inv, slices.Concat(found...), opts); err != nil {
		return nil, step.Fail(err)
	}
	step.Finish(fmt.Sprintf("%d images, %d unresolved, in %d clusters", len(inv.Images), len(inv.Unresolved), len(targets)))
	return inv, nil
}

// found is one image use read from a cluster, before resolution.
type found struct {
	use  Use
	note string // set for an unrecognised use
}

// owner is what a controlling ownerReference leads to.
type owner struct {
	ref  deploy.ObjectRef
	ctrl *metav1.OwnerReference
}

func readCluster(ctx context.Context, t Target, opts InventoryOptions) (ClusterInventory, []found, error) {
	var ci ClusterInventory
	cfg := rest.CopyConfig(t.Config)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return ci, nil, err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return ci, nil, err
	}
	want := opts.Resources
	if want == nil {
		want = WorkloadResources
	}
	resources, err := served(ctx, disc, want)
	if err != nil {
		return ci, nil, err
	}
	budget := opts.MaxObjects
	var workloads, pods []*unstructured.Unstructured
	for _, r := range resources {
		objs, err := list(ctx, dyn, r, opts.PageSize, &budget)
		if err != nil {
			return ci, nil, err
		}
		workloads = append(workloads, objs...)
		ci.Resources = append(ci.Resources, r.GroupResource().String())
	}
	pods, err = list(ctx, dyn, podsResource, opts.PageSize, &budget)
	if err != nil {
		return ci, nil, err
	}
	ci.Pods, ci.Workloads = len(pods), len(workloads)

	owners := make(map[types.UID]owner, len(workloads))
	for _, w := range workloads {
		owners[w.GetUID()] = owner{ref: deploy.RefOf(w), ctrl: metav1.GetControllerOf(w)}
	}
	var out []found
	add := func(u deploy.ImageUse, wl deploy.ObjectRef, running bool, image string) {
		f := found{use: Use{Cluster: t.Name, Workload: wl, Container: u.Name, Kind: u.Kind, Running: running, Image: image}}
		if running {
			f.use.Pods = 1
		}
		if u.Kind == deploy.UnrecognisedImage {
			f.note = cmp.Or(u.Note, "deploy.Walk does not interpret "+u.Path)
			f.use.Container = u.Path
		}
		out = append(out, f)
	}
	for _, w := range workloads {
		if c := metav1.GetControllerOf(w); c != nil {
			if _, listed := owners[c.UID]; listed {
				continue // its owner declares; its pods show what runs
			}
		}
		wl, _ := deploy.Walk(w) // a ShapeError still lists what was found
		for _, u := range wl.Images {
			add(u, wl.Object, false, u.Image)
		}
	}
	for _, p := range pods {
		top := topOwner(p, owners)
		ids := statusImageIDs(p)
		wl, _ := deploy.Walk(p)
		for _, u := range wl.Images {
			image := u.Image
			if u.Kind == deploy.ContainerImage {
				if id := ids[u.Name]; id != "" {
					image = id
				}
			}
			add(u, top, true, image)
		}
	}
	return ci, out, nil
}

// served returns the resources of want the cluster serves, in want's order.
func served(ctx context.Context, disc discovery.DiscoveryInterface, want []schema.GroupVersionResource) ([]schema.GroupVersionResource, error) {
	byGV := map[schema.GroupVersion]map[string]bool{}
	var out []schema.GroupVersionResource
	for _, r := range want {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		gv := r.GroupVersion()
		names, ok := byGV[gv]
		if !ok {
			names = map[string]bool{}
			list, err := disc.ServerResourcesForGroupVersion(gv.String())
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return nil, fmt.Errorf("discover %s: %w", gv, err)
			default:
				for _, res := range list.APIResources {
					if slices.Contains(res.Verbs, "list") {
						names[res.Name] = true
					}
				}
			}
			byGV[gv] = names
		}
		if names[r.Resource] {
			out = append(out, r)
		}
	}
	return out, nil
}

// list lists every object of r in all namespaces, page by page, counting them
// against budget.
func list(ctx context.Context, dyn dynamic.Interface, r schema.GroupVersionResource, page int, budget *int) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	cont := ""
	for {
		l, err := dyn.Resource(r).List(ctx, metav1.ListOptions{Limit: int64(page), Continue: cont})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", r.GroupResource(), err)
		}
		*budget -= len(l.Items)
		if *budget < 0 {
			return nil, fmt.Errorf("list %s: more pods and workloads than MaxObjects: %w", r.GroupResource(), ErrTooManyObjects)
		}
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
		cont = l.GetContinue()
		if cont == "" {
			return out, nil
		}
	}
}

// topOwner follows controller ownerReferences from a pod through the listed
// workloads (a ReplicaSet to its Deployment) to the first owner that is not
// controlled by a listed one; a pod without a controller is its own workload.
func topOwner(p *unstructured.Unstructured, owners map[types.UID]owner) deploy.ObjectRef {
	ref := deploy.RefOf(p)
	ctrl := metav1.GetControllerOf(p)
	for range 8 { // ownership chains are short; a cycle stops here
		if ctrl == nil {
			return ref
		}
		o, ok := owners[ctrl.UID]
		if !ok {
			gv, _ := schema.ParseGroupVersion(ctrl.APIVersion)
			return deploy.ObjectRef{Group: gv.Group, Kind: ctrl.Kind, Namespace: p.GetNamespace(), Name: ctrl.Name}
		}
		ref, ctrl = o.ref, o.ctrl
	}
	return ref
}

// statusImageIDs maps each container of a pod's status to its imageID, when the
// imageID names a digest.
func statusImageIDs(p *unstructured.Unstructured) map[string]string {
	out := map[string]string{}
	for _, list := range []string{"initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"} {
		statuses, _, _ := unstructured.NestedSlice(p.Object, "status", list)
		for _, s := range statuses {
			m, ok := s.(map[string]any)
			if !ok {
				continue
			}
			n, _ := m["name"].(string)
			id, _ := m["imageID"].(string)
			if id = imageIDRef(id); n != "" && id != "" {
				out[n] = id
			}
		}
	}
	return out
}

// imageIDRef returns the repository@digest an imageID names ("docker-pullable://"
// and other schemes cut), or "" when it names none (a bare image ID, sha256:...,
// says which image config ran, not where to find it).
func imageIDRef(id string) string {
	if _, rest, ok := strings.Cut(id, "://"); ok {
		id = rest
	}
	if !strings.Contains(id, "@") {
		return ""
	}
	return id
}

// resolveAll turns the uses into the inventory's images and unresolved
// references, resolving each tag once.
func resolveAll(ctx context.Context, inv *Inventory, all []found, opts InventoryOptions) error {
	type target struct {
		ref    name.Reference
		digest string
		reason string
	}
	targets := map[string]*target{}
	for _, f := range all {
		if _, ok := targets[f.use.Image]; ok {
			continue
		}
		t := &target{}
		targets[f.use.Image] = t
		if f.note != "" {
			t.reason = "not interpreted: " + f.note
			continue
		}
		ref, err := name.ParseReference(f.use.Image)
		if err != nil {
			t.reason = fmt.Sprintf("not an image reference: %v", err)
			continue
		}
		t.ref = ref
		if d, ok := ref.(name.Digest); ok {
			t.digest = d.Context().Digest(d.DigestStr()).Name()
		}
	}
	sem := make(chan struct{}, cmp.Or(opts.ResolveConcurrency, DefaultResolveConcurrency))
	var wg sync.WaitGroup
	for _, t := range targets {
		if t.ref == nil || t.digest != "" {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return fmt.Errorf("fleet: inventory: %w", ctx.Err())
		}
		wg.Go(func() {
			defer func() { <-sem }()
			d, err := opts.Resolver.Resolve(ctx, t.ref)
			switch {
			case err != nil:
				t.reason = fmt.Sprintf("resolve %s: %v", t.ref, err)
			case d.DigestStr() == "":
				t.reason = fmt.Sprintf("resolve %s: the resolver returned no digest", t.ref)
			default:
				t.digest = d.Context().Digest(d.DigestStr()).Name()
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fleet: inventory: %w", err)
	}
	images := map[string]map[useKey]*Use{}
	unresolved := map[string]map[useKey]*Use{}
	reasons := map[string]string{}
	for _, f := range all {
		t := targets[f.use.Image]
		bucket, key := images, t.digest
		if t.digest == "" {
			bucket, key = unresolved, f.use.Image
			reasons[key] = t.reason
		}
		uses := bucket[key]
		if uses == nil {
			uses = map[useKey]*Use{}
			bucket[key] = uses
		}
		k := keyOf(f.use)
		if u, ok := uses[k]; ok {
			u.Pods += f.use.Pods
			continue
		}
		u := f.use
		uses[k] = &u
	}
	for d, uses := range images {
		inv.Images = append(inv.Images, Image{Digest: d, Uses: sortedUses(uses)})
	}
	slices.SortFunc(inv.Images, func(a, b Image) int { return strings.Compare(a.Digest, b.Digest) })
	for img, uses := range unresolved {
		inv.Unresolved = append(inv.Unresolved, Unresolved{Image: img, Reason: reasons[img], Uses: sortedUses(uses)})
	}
	slices.SortFunc(inv.Unresolved, func(a, b Unresolved) int { return strings.Compare(a.Image, b.Image) })
	return nil
}

type useKey struct {
	cluster   string
	workload  deploy.ObjectRef
	container string
	kind      deploy.ImageKind
	running   bool
	image     string
}

func keyOf(u Use) useKey {
	return useKey{u.Cluster, u.Workload, u.Container, u.Kind, u.Running, u.Image}
}

func sortedUses(m map[useKey]*Use) []Use {
	out := make([]Use, 0, len(m))
	for _, u := range m {
		out = append(out, *u)
	}
	slices.SortFunc(out, compareUses)
	return out
}

func compareUses(a, b Use) int {
	return cmp.Or(
		strings.Compare(a.Cluster, b.Cluster),
		strings.Compare(a.Workload.Namespace, b.Workload.Namespace),
		strings.Compare(a.Workload.Group, b.Workload.Group),
		strings.Compare(a.Workload.Kind, b.Workload.Kind),
		strings.Compare(a.Workload.Name, b.Workload.Name),
		strings.Compare(a.Container, b.Container),
		compareBool(a.Running, b.Running),
		strings.Compare(a.Image, b.Image),
	)
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
