package deploy

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ImageKind says where an [ImageUse] sits.
type ImageKind string

// The places an object names an image.
const (
	// ContainerImage is the image of a container, init container or ephemeral
	// container of a pod spec, or of a container a workload custom resource turns
	// into one: an Argo Workflows template's container, script, init container,
	// sidecar or containerSet container; a Tekton step, step template or sidecar.
	ContainerImage ImageKind = "container"
	// VolumeImage is an image volume's reference (volumes[].image.reference,
	// Kubernetes 1.33+): the image's files are mounted into the pod.
	VolumeImage ImageKind = "volume"
	// PackageImage is an OCI image a controller pulls and runs the contents of: a
	// Tekton bundle (a task, pipeline or step action packed in an image, named by a
	// taskRef's, pipelineRef's or step ref's bundle field or by the bundles
	// resolver's bundle parameter) or a Crossplane package (spec.package of a
	// pkg.crossplane.io Provider, Configuration or Function). It is verified and
	// pinned like a container's image.
	PackageImage ImageKind = "package"
	// UnrecognisedImage is a value that looks like an image in a place [Walk] does
	// not interpret (see [Walk] for the rule), or a field that can change a pod's
	// images without naming them (Argo's podSpecPatch, an Argo resource template's
	// manifest Walk cannot read, a Tekton task fetched by a remote resolver). Nobody
	// can vouch for it.
	UnrecognisedImage ImageKind = "unrecognised"
)

// ReasonUnrecognisedImage is the code of a gate's reason for an [UnrecognisedImage]
// use: the gate cannot check what it cannot interpret, so it denies.
const ReasonUnrecognisedImage ReasonCode = "unrecognised-image"

// ImageUse is one place an object names an image.
type ImageUse struct {
	// Object is the object that names the image.
	Object ObjectRef
	// Kind says where the image sits.
	Kind ImageKind
	// Path is the field path of the image value, lists of named items by name:
	// spec.template.spec.containers[name=web].image,
	// spec.template.spec.volumes[name=data].image.reference,
	// spec.templates[name=build].script.image, spec.steps[name=test].image; an
	// image in the n-th object of an Argo resource template's manifest has the path
	// of the manifest, [n], and its path in that object:
	// spec.templates[name=run].resource.manifest[0].spec.containers[name=c].image.
	Path string
	// Name names the container (or step, or sidecar) or the volume; empty for a
	// package and for an unrecognised use.
	Name string
	// Image is the image reference as the object writes it.
	Image string
	// Note says why an unrecognised use is not interpreted, when Image alone does
	// not.
	Note string

	set func(string)
}

// SetImage writes image in the object in place of u.Image (render pins images with
// it). An unrecognised use cannot be rewritten.
func (u *ImageUse) SetImage(image string) error {
	if u.set == nil {
		return fmt.Errorf("%s: %s: not a place an image can be set", u.Object, u.Path)
	}
	u.set(image)
	u.Image = image
	return nil
}

// Container is one container of a [PodSpec].
type Container struct {
	// List is the pod spec list the container is in, or stands for:
	// "initContainers", "containers" or "ephemeralContainers".
	List string
	// Name is the container's name ("main" for an Argo template's unnamed main
	// container).
	Name string
	// Path is the container's field path, e.g. spec.template.spec.containers[name=web].
	Path string
	// Fields is the container as a pod would get it: the object's own map, or for a
	// Tekton step a new map, the step over its stepTemplate (computeResources as
	// resources).
	Fields map[string]any
}

// Volume is one volume of a [PodSpec].
type Volume struct {
	// Name is the volume's name.
	Name string
	// Path is the volume's field path, e.g. spec.template.spec.volumes[name=data].
	Path string
	// Fields is the volume as the object holds it.
	Fields map[string]any
}

// PodSpec is one pod spec in an object: one the object holds (a Pod's spec, a
// workload's pod template), or one built the way a controller builds the pod
// around containers the object lists (an Argo Workflows template, a Tekton task).
type PodSpec struct {
	// Path is the field path of the pod spec (spec.template.spec), or for a built
	// one of what stands for the pod (spec.templates[name=build], spec).
	Path string
	// Spec holds the pod spec: the object's own map, or for a built one a new map
	// with the pod-level fields that apply (securityContext, host namespaces,
	// service account, volumes) and the container lists.
	Spec map[string]any
	// Meta is the pod's metadata (a Pod's own, a template's), nil when there is
	// none; MetaPath is its field path.
	Meta     map[string]any
	MetaPath string
	// Template is the pod template (metadata and spec) the spec sits in, nil for a
	// Pod and for a built pod spec.
	Template map[string]any
	// Containers lists the containers: init containers, containers, then
	// ephemeral containers, each list in its order.
	Containers []Container
	// Volumes lists the volumes in their order.
	Volumes []Volume
	// Built is set for a pod spec built around containers.
	Built bool
	// FieldPaths says, for a built pod spec, where each pod-level field of Spec
	// comes from (securityContext: spec.securityContext); see [PodSpec.FieldPath].
	FieldPaths map[string]string
}

// FieldPath returns the field path of field (a dotted path in the pod spec, e.g.
// securityContext.runAsNonRoot) in the object: below Path, or for a built pod spec
// where the field's top key was taken from.
func (p PodSpec) FieldPath(field string) string {
	top, rest, _ := strings.Cut(field, ".")
	if from, ok := p.FieldPaths[top]; ok {
		if rest == "" {
			return from
		}
		return from + "." + rest
	}
	return join(p.Path, field)
}

// Workload is what [Walk] finds in one object.
type Workload struct {
	// Object names the object.
	Object ObjectRef
	// Pods lists its pod specs.
	Pods []PodSpec
	// Images lists every place it names an image: the containers and image volumes
	// of each pod spec in order, then the unrecognised uses in field order.
	Images []ImageUse
}

// ShapeError says that an object of a kind that holds a pod template (a
// Deployment, a Job, ...) holds none, or one that is not an object.
type ShapeError struct {
	Object  ObjectRef
	Path    string // where the pod template belongs, e.g. spec.template
	Problem string
}

// Error prints "object: path: problem".
func (e *ShapeError) Error() string { return fmt.Sprintf("%s: %s: %s", e.Object, e.Path, e.Problem) }

// Images walks each object (see [Walk]) and returns every image use, object by
// object. An object [Walk] reports a [ShapeError] for contributes the uses it could
// find; the rest of it is searched for images by Walk's rule like any object.
func Images(objs []*unstructured.Unstructured) []ImageUse {
	var out []ImageUse
	for _, o := range objs {
		if o == nil {
			continue
		}
		w, _ := Walk(o)
		out = append(out, w.Images...)
	}
	return out
}

// Walk finds the pod specs and images of obj, always in the same order. It is the
// one walker render (pinning), gate, scan/policy and the admission webhook share.
//
// It interprets:
//   - Pods (spec, and the annotations of metadata, as those of any pod template)
//     and the pod templates of Deployments, StatefulSets, DaemonSets,
//     ReplicaSets, ReplicationControllers, Jobs, CronJobs, PodTemplates, Argo
//     Rollouts and Knative Services and Configurations;
//   - Argo Workflows (Workflow, WorkflowTemplate, ClusterWorkflowTemplate,
//     CronWorkflow): each template with a container, script, containerSet, init
//     containers or sidecars is a built pod spec with the workflow's and the
//     template's pod-level fields and volumes. A resource template's manifest is
//     parsed (at most 1 MiB, manifests in manifests at most 3 deep) and each
//     object in it walked like a top object, its pod specs and images reported
//     under the manifest's path; a manifest that cannot be read or walked, has
//     workflow parameters ({{...}}, which can rewrite any of it when the workflow
//     runs) or comes from an artifact (manifestFrom) is an [UnrecognisedImage] use.
//     The get and delete actions create nothing and are skipped;
//   - Tekton (Task, ClusterTask, StepAction, and the inline task specs of
//     TaskRuns, Pipelines and PipelineRuns): steps over their stepTemplate,
//     sidecars and volumes as a built pod spec, with the run's podTemplate. The
//     taskRefs, pipelineRefs and step refs of runs, pipelines and tasks: a bundle
//     (the bundle field, or the bundles resolver's bundle parameter) is a
//     [PackageImage] use, a bundle written as a parameter ($(params.x)) an
//     unrecognised one; a ref by name, or by the cluster resolver, names an object
//     in the cluster, which is walked where it is applied; any other resolver (git,
//     hub, http, a custom one) fetches a definition that can run any image, an
//     [UnrecognisedImage] use. A TaskRun's and a PipelineRun's own annotations
//     reach the pods Tekton makes and are searched as a Pod's are;
//   - Crossplane (pkg.crossplane.io Provider, Configuration, Function): spec.package
//     is a [PackageImage] use;
//   - any other object: every map holding a list of containers (containers,
//     initContainers or ephemeralContainers holding objects) is a pod spec, so
//     spec.template.spec of a workload custom resource, or spec of a Knative
//     Revision (whose metadata is then the pod's, its annotations searched).
//
// In every pod spec it finds the containers' images and the image volumes'
// references. What it does not interpret is searched for values that look like
// images, each an [UnrecognisedImage] use. Under a key named "image", "imageName",
// "imageRef" or "imageReference", or ending in one of them capitalised (baseImage,
// builderImageName), or named "images" or ending in "Images" (extraImages), or
// ending in "/image", "-image" or "_image" (annotations such as
// config.linkerd.io/proxy-image, which an injector turns into a container): a
// non-empty string; an object holding a string "reference" (an image volume's
// shape) or "repository" (Helm values' shape, with its tag and digest); a list of
// such strings and objects (a string with a "*" is a pattern, as in a policy's
// exemptImages, not an image). So a key like imagePullPolicy, imagePullSecrets or
// imageTag is not searched as an image, and a list under an image key holding
// objects of another shape is searched inside. The search leaves out the object's
// metadata (but for the annotations of a pod's metadata, see above) and status,
// ConfigMaps and Secrets (opaque data that runs nothing), CustomResourceDefinitions
// (schemas) and Flux's image automation kinds (repositories to watch, not to run).
// Images written elsewhere (a command's arguments, a Tekton parameter, the
// annotations of a workload's own metadata, which reach no pod) are not found.
//
// Walk returns a *[ShapeError] when a core workload kind holds no pod template, or
// one that is not an object; the Workload then holds what else it found.
func Walk(obj *unstructured.Unstructured) (*Workload, error) {
	if obj == nil {
		return &Workload{}, nil
	}
	w := newWalker(RefOf(obj), 0)
	err := w.walk(obj.Object)
	return w.wl, err
}

func newWalker(ref ObjectRef, depth int) *walker {
	return &walker{wl: &Workload{Object: ref}, seen: map[unsafe.Pointer]bool{}, depth: depth}
}

// walk interprets the object root, then searches the rest for images.
func (w *walker) walk(root map[string]any) error {
	err := w.object(root)
	if w.opaque {
		return err
	}
	if w.podMeta {
		if meta, ok := root["metadata"].(map[string]any); ok {
			w.search(meta["annotations"], "metadata.annotations", false)
		}
	}
	w.search(root, "", true)
	return err
}

type walker struct {
	wl *Workload
	// seen holds the maps interpreted, which the search for images skips.
	seen   map[unsafe.Pointer]bool
	opaque bool // no search for images
	// podMeta is set when the object's own annotations reach a pod: a Pod's, a
	// Tekton run's, an object whose spec is a pod spec.
	podMeta bool
	// depth counts the Argo resource manifests the object is inside.
	depth int
}

// templateKind says where a kind holds its pod template and whether it must.
type templateKind struct {
	path     []string
	required bool
}

var templateKinds = map[[2]string]templateKind{
	{"", "ReplicationController"}:            {[]string{"spec", "template"}, true},
	{"", "PodTemplate"}:                      {[]string{"template"}, true},
	{"apps", "Deployment"}:                   {[]string{"spec", "template"}, true},
	{"apps", "StatefulSet"}:                  {[]string{"spec", "template"}, true},
	{"apps", "DaemonSet"}:                    {[]string{"spec", "template"}, true},
	{"apps", "ReplicaSet"}:                   {[]string{"spec", "template"}, true},
	{"extensions", "Deployment"}:             {[]string{"spec", "template"}, true},
	{"extensions", "DaemonSet"}:              {[]string{"spec", "template"}, true},
	{"extensions", "ReplicaSet"}:             {[]string{"spec", "template"}, true},
	{"batch", "Job"}:                         {[]string{"spec", "template"}, true},
	{"batch", "CronJob"}:                     {[]string{"spec", "jobTemplate", "spec", "template"}, true},
	{"argoproj.io", "Rollout"}:               {[]string{"spec", "template"}, false}, // or spec.workloadRef
	{"serving.knative.dev", "Service"}:       {[]string{"spec", "template"}, false},
	{"serving.knative.dev", "Configuration"}: {[]string{"spec", "template"}, false},
}

// imageFree lists the kinds whose image-looking values run nothing, by group and
// kind ("" kind: the whole group).
var imageFree = map[[2]string]bool{
	{"", "ConfigMap"}: true,
	{"", "Secret"}:    true,
	{"apiextensions.k8s.io", "CustomResourceDefinition"}: true,
	{"image.toolkit.fluxcd.io", ""}:                      true,
}

func (w *walker) object(root map[string]any) error {
	ref := w.wl.Object
	if imageFree[[2]string{ref.Group, ref.Kind}] || imageFree[[2]string{ref.Group, ""}] {
		w.opaque = true
		return nil
	}
	if ref.Group == "" && ref.Kind == "Pod" {
		w.podMeta = true
		spec, ok := root["spec"].(map[string]any)
		if !ok {
			return nil
		}
		meta, _ := root["metadata"].(map[string]any)
		w.podSpec(PodSpec{Path: "spec", Spec: spec, Meta: meta, MetaPath: "metadata"})
		return nil
	}
	if tk, ok := templateKinds[[2]string{ref.Group, ref.Kind}]; ok {
		return w.template(root, tk)
	}
	switch ref.Group {
	case "argoproj.io":
		if w.argo(root) {
			return nil
		}
	case "tekton.dev":
		if w.tekton(root) {
			return nil
		}
	case "pkg.crossplane.io":
		w.crossplane(root)
	}
	w.generic(root, "", nil, root)
	return nil
}

// template walks the pod template of a workload kind.
func (w *walker) template(root map[string]any, tk templateKind) error {
	path := strings.Join(tk.path, ".")
	v, found, _ := unstructured.NestedFieldNoCopy(root, tk.path...)
	if !found || v == nil {
		if tk.required {
			return &ShapeError{Object: w.wl.Object, Path: path, Problem: "no pod template"}
		}
		return nil
	}
	t, ok := v.(map[string]any)
	if !ok {
		return &ShapeError{Object: w.wl.Object, Path: path, Problem: fmt.Sprintf("the pod template is a %T, not an object", v)}
	}
	spec, ok := t["spec"].(map[string]any)
	if !ok {
		return nil // nothing runs; a spec of another type is found by the search
	}
	meta, _ := t["metadata"].(map[string]any)
	w.podSpec(PodSpec{Path: path + ".spec", Spec: spec, Meta: meta, MetaPath: path + ".metadata", Template: t})
	return nil
}

// containerLists are the pod spec's container lists, in the order [PodSpec] keeps.
var containerLists = []string{"initContainers", "containers", "ephemeralContainers"}

// podSpec records a pod spec the object holds, with its containers and volumes.
func (w *walker) podSpec(p PodSpec) {
	for _, list := range containerLists {
		items, _ := p.Spec[list].([]any)
		for i, it := range items {
			c, ok := it.(map[string]any)
			if !ok {
				continue
			}
			name, _ := c["name"].(string)
			p.Containers = append(p.Containers, w.container(list, name, p.Path+"."+item(list, c, i), c, c))
		}
	}
	p.Volumes = w.volumes(p.Spec["volumes"], p.Path+".volumes")
	w.wl.Pods = append(w.wl.Pods, p)
}

// container records a container at path whose image is own's (fields is the
// container as the pod gets it).
func (w *walker) container(list, name, path string, own, fields map[string]any) Container {
	if w.mark(own) {
		w.imageAt(ContainerImage, own, "image", path+".image", name)
	}
	return Container{List: list, Name: name, Path: path, Fields: fields}
}

// volumes records the volumes of the list v at path, and their image references.
func (w *walker) volumes(v any, path string) []Volume {
	items, _ := v.([]any)
	var out []Volume
	for i, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		name, _ := m["name"].(string)
		vp := path + item("", m, i)
		out = append(out, Volume{Name: name, Path: vp, Fields: m})
		if !w.mark(m) {
			continue // a workflow's volume, shared by its templates
		}
		if img, ok := m["image"].(map[string]any); ok {
			w.imageAt(VolumeImage, img, "reference", vp+".image.reference", name)
		} else if img, ok := m["image"]; ok && img != nil {
			w.unrecognised(vp+".image", fmt.Sprint(img), "an image volume source that is not an object")
		}
	}
	return out
}

// imageAt records the image under key of m, if any: a string is a use of kind k, a
// value of another type an unrecognised use.
func (w *walker) imageAt(k ImageKind, m map[string]any, key, path, name string) {
	switch v := m[key].(type) {
	case nil:
	case string:
		w.wl.Images = append(w.wl.Images, ImageUse{Object: w.wl.Object, Kind: k, Path: path, Name: name, Image: v,
			set: func(s string) { m[key] = s }})
	default:
		w.unrecognised(path, fmt.Sprint(v), fmt.Sprintf("the image is a %T, not a string", v))
	}
}

func (w *walker) unrecognised(path, image, note string) {
	w.wl.Images = append(w.wl.Images, ImageUse{Object: w.wl.Object, Kind: UnrecognisedImage, Path: path, Image: image, Note: note})
}

// mark records m as interpreted; it returns false when it already was.
func (w *walker) mark(m map[string]any) bool {
	p := reflect.ValueOf(m).UnsafePointer()
	if w.seen[p] {
		return false
	}
	w.seen[p] = true
	return true
}

// generic finds pod specs anywhere in v: maps holding a list of containers. parent
// is the map holding v; root the object.
func (w *walker) generic(v any, path string, parent, root map[string]any) {
	switch v := v.(type) {
	case map[string]any:
		if path != "" && isPodSpec(v) {
			p := PodSpec{Path: path, Spec: v}
			switch {
			case path == "spec":
				p.Meta, _ = root["metadata"].(map[string]any)
				p.MetaPath = "metadata"
				w.podMeta = true
			case strings.HasSuffix(path, ".spec"):
				p.Template = parent
				p.Meta, _ = parent["metadata"].(map[string]any)
				p.MetaPath = strings.TrimSuffix(path, ".spec") + ".metadata"
			}
			w.podSpec(p)
			return
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if path == "" && (k == "metadata" || k == "status") {
				continue
			}
			w.generic(v[k], join(path, k), v, root)
		}
	case []any:
		for i, it := range v {
			m, _ := it.(map[string]any)
			w.generic(it, path+item("", m, i), parent, root)
		}
	}
}

func isPodSpec(m map[string]any) bool {
	for _, list := range containerLists {
		items, _ := m[list].([]any)
		if slices.ContainsFunc(items, func(it any) bool { _, ok := it.(map[string]any); return ok }) {
			return true
		}
	}
	return false
}

// search records every value in v that looks like an image (see [Walk]) and is not
// in a map the walk interpreted.
func (w *walker) search(v any, path string, top bool) {
	switch v := v.(type) {
	case map[string]any:
		if !top && w.seen[reflect.ValueOf(v).UnsafePointer()] {
			return
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if top && (k == "metadata" || k == "status") {
				continue
			}
			p := join(path, k)
			if imageKey(k) && w.guess(v[k], p) {
				continue
			}
			w.search(v[k], p, false)
		}
	case []any:
		for i, it := range v {
			m, _ := it.(map[string]any)
			w.search(it, path+item("", m, i), false)
		}
	}
}

// guess records v, under an image-like key at path, when it looks like an image.
func (w *walker) guess(v any, path string) bool {
	switch v := v.(type) {
	case string:
		if v == "" {
			return false
		}
		w.unrecognised(path, v, "")
		return true
	case map[string]any:
		if w.seen[reflect.ValueOf(v).UnsafePointer()] {
			return false
		}
		if ref, ok := v["reference"].(string); ok && ref != "" {
			w.unrecognised(path+".reference", ref, "")
			return true
		}
		if repo, ok := v["repository"].(string); ok && repo != "" {
			img := repo
			if tag, ok := v["tag"].(string); ok && tag != "" {
				img += ":" + tag
			}
			if dg, ok := v["digest"].(string); ok && dg != "" {
				img += "@" + dg
			}
			w.unrecognised(path+".repository", img, "")
			return true
		}
	case []any:
		for i, it := range v {
			m, _ := it.(map[string]any)
			ip := path + item("", m, i)
			if s, ok := it.(string); ok {
				if s != "" && !strings.Contains(s, "*") {
					w.unrecognised(ip, s, "")
				}
				continue
			}
			if !w.guess(it, ip) {
				w.search(it, ip, false)
			}
		}
		return true
	}
	return false
}

// imageKeys are the keys whose values are taken for images, as they are or
// capitalised at the end of a longer key (baseImage, builderImageName).
var imageKeys = []string{"image", "imageName", "imageRef", "imageReference", "images"}

func imageKey(k string) bool {
	// An annotation's name: an injector's image (config.linkerd.io/proxy-image,
	// vault.hashicorp.com/agent-image, dapr.io/sidecar-image).
	for _, sep := range []string{"/", "-", "_"} {
		if len(k) > len(sep+"image") && strings.HasSuffix(k, sep+"image") {
			return true
		}
	}
	for _, ik := range imageKeys {
		if k == ik {
			return true
		}
		if suffix := "I" + ik[1:]; len(k) > len(suffix) && strings.HasSuffix(k, suffix) {
			return true
		}
	}
	return false
}

// item names the i-th item m of a list: [name=x] when it has a name, else [i].
func item(list string, m map[string]any, i int) string {
	if name, ok := m["name"].(string); ok && name != "" {
		return list + "[name=" + name + "]"
	}
	return list + "[" + strconv.Itoa(i) + "]"
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}
