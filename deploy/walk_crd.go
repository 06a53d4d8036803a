package deploy

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// podLevel are the pod spec fields a built pod spec takes from the resource that
// stands for the pod (an Argo workflow and template, a Tekton podTemplate).
var podLevel = []string{"securityContext", "hostNetwork", "hostPID", "hostIPC",
	"automountServiceAccountToken", "serviceAccountName", "os"}

// builder collects a built pod spec.
type builder struct {
	w       *walker
	pod     PodSpec
	lists   map[string][]any
	volumes []any
}

func (w *walker) build(path string) *builder {
	return &builder{w: w, pod: PodSpec{Path: path, Spec: map[string]any{}, Built: true, FieldPaths: map[string]string{}},
		lists: map[string][]any{}}
}

// podFields copies the pod-level fields of src (at path), replacing those already
// set.
func (b *builder) podFields(src map[string]any, path string) {
	for _, k := range podLevel {
		if v, ok := src[k]; ok {
			b.pod.Spec[k] = v
			b.pod.FieldPaths[k] = path + "." + k
		}
	}
}

// addVolumes adds the volumes of the list v at path.
func (b *builder) addVolumes(v any, path string) {
	b.pod.Volumes = append(b.pod.Volumes, b.w.volumes(v, path)...)
	if items, ok := v.([]any); ok {
		b.volumes = append(b.volumes, items...)
	}
}

// add adds a container whose image is own's; fields is the container as the pod
// gets it (nil: own).
func (b *builder) add(list, name, path string, own, fields map[string]any) {
	if fields == nil {
		fields = own
	}
	b.pod.Containers = append(b.pod.Containers, b.w.container(list, name, path, own, fields))
	b.lists[list] = append(b.lists[list], fields)
}

// addList adds the containers of the list v at path.
func (b *builder) addList(list string, v any, path string) {
	items, _ := v.([]any)
	for i, it := range items {
		if c, ok := it.(map[string]any); ok {
			name, _ := c["name"].(string)
			b.add(list, name, path+item("", c, i), c, nil)
		}
	}
}

// done records the pod spec if it has a container; the containers are sorted into
// their lists in [PodSpec]'s order.
func (b *builder) done() {
	if len(b.pod.Containers) == 0 {
		return
	}
	var sorted []Container
	for _, l := range containerLists {
		for _, c := range b.pod.Containers {
			if c.List == l {
				sorted = append(sorted, c)
			}
		}
		if len(b.lists[l]) > 0 {
			b.pod.Spec[l] = b.lists[l]
		}
	}
	b.pod.Containers = sorted
	if len(b.volumes) > 0 {
		b.pod.Spec["volumes"] = b.volumes
	}
	b.w.wl.Pods = append(b.w.wl.Pods, b.pod)
}

// argo walks the Argo Workflows kinds; it returns false for other argoproj.io kinds.
func (w *walker) argo(root map[string]any) bool {
	spec, _ := root["spec"].(map[string]any)
	switch w.wl.Object.Kind {
	case "Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate":
		w.workflow(spec, "spec")
	case "CronWorkflow":
		ws, _ := spec["workflowSpec"].(map[string]any)
		w.workflow(ws, "spec.workflowSpec")
	default:
		return false
	}
	return true
}

// workflow walks a workflow spec: each template that runs containers is a pod.
func (w *walker) workflow(spec map[string]any, path string) {
	if spec == nil {
		return
	}
	w.patch(spec, path)
	templates, _ := spec["templates"].([]any)
	for i, it := range templates {
		t, ok := it.(map[string]any)
		if !ok {
			continue
		}
		tp := path + "." + item("templates", t, i)
		b := w.build(tp)
		b.pod.Meta, _ = t["metadata"].(map[string]any)
		if b.pod.Meta != nil {
			b.pod.MetaPath = tp + ".metadata"
		}
		b.podFields(spec, path)
		b.podFields(t, tp)
		b.addList("initContainers", t["initContainers"], tp+".initContainers")
		for _, k := range []string{"container", "script"} {
			if c, ok := t[k].(map[string]any); ok {
				name, _ := c["name"].(string)
				if name == "" {
					name = "main"
				}
				b.add("containers", name, tp+"."+k, c, nil)
			}
		}
		if cs, ok := t["containerSet"].(map[string]any); ok {
			b.addList("containers", cs["containers"], tp+".containerSet.containers")
		}
		b.addList("containers", t["sidecars"], tp+".sidecars")
		if len(b.pod.Containers) > 0 {
			b.addVolumes(spec["volumes"], path+".volumes")
			b.addVolumes(t["volumes"], tp+".volumes")
		}
		w.patch(t, tp)
		b.done()
		if r, ok := t["resource"].(map[string]any); ok {
			w.argoResource(r, tp+".resource")
		}
	}
}

// The bounds of the manifests of Argo resource templates Walk reads.
const (
	maxManifest      = 1 << 20 // bytes of one manifest
	maxManifestDepth = 3       // manifests in manifests
)

// argoResource walks the manifest of an Argo resource template r at path: each
// object it creates is walked like a top object and its pod specs and images
// reported under path.manifest[n]; what cannot be read is an unrecognised use.
func (w *walker) argoResource(r map[string]any, path string) {
	if !w.mark(r) {
		return
	}
	if action, _ := r["action"].(string); action == "get" || action == "delete" {
		return // runs nothing
	}
	if mf, ok := r["manifestFrom"]; ok && mf != nil {
		w.unrecognised(path+".manifestFrom", "", "a manifest read from an artifact when the workflow runs can create pods with any image, which cannot be checked")
	}
	v, ok := r["manifest"]
	if !ok || v == nil {
		return
	}
	mp := path + ".manifest"
	text, ok := v.(string)
	switch {
	case !ok:
		w.unrecognised(mp, "", fmt.Sprintf("the manifest is a %T, not a string", v))
		return
	case len(text) > maxManifest:
		w.unrecognised(mp, "", fmt.Sprintf("the manifest is %d bytes, more than the %d Walk reads", len(text), maxManifest))
		return
	case w.depth >= maxManifestDepth:
		w.unrecognised(mp, "", fmt.Sprintf("a manifest inside %d manifests is not read", maxManifestDepth))
		return
	case strings.Contains(text, "{{"):
		w.unrecognised(mp, "", "the manifest has workflow parameters ({{...}}), which can change what it creates when the workflow runs, so it cannot be checked")
		return
	}
	var docs []map[string]any
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			w.unrecognised(mp, "", "the manifest cannot be read, so what it creates cannot be checked: "+err.Error())
			return
		}
		if doc == nil {
			continue
		}
		m, ok := doc.(map[string]any)
		if !ok {
			w.unrecognised(mp, "", fmt.Sprintf("the manifest holds a %T, not an object, so what it creates cannot be checked", doc))
			return
		}
		docs = append(docs, m)
	}
	// rewrite writes the objects back into the manifest, after an image in one of
	// them was set.
	rewrite := func() {
		var parts []string
		for _, d := range docs {
			b, err := yaml.Marshal(d)
			if err != nil {
				return // values decoded from YAML marshal
			}
			parts = append(parts, string(b))
		}
		r["manifest"] = strings.Join(parts, "---\n")
	}
	for i, d := range docs {
		prefix := mp + "[" + strconv.Itoa(i) + "]."
		sub := newWalker(RefOf(&unstructured.Unstructured{Object: d}), w.depth+1)
		_ = sub.walk(d) // a core workload without a pod template creates no pod
		for _, u := range sub.wl.Images {
			u.Object = w.wl.Object
			u.Path = prefix + u.Path
			if set := u.set; set != nil {
				u.set = func(s string) { set(s); rewrite() }
			}
			w.wl.Images = append(w.wl.Images, u)
		}
		for _, p := range sub.wl.Pods {
			p.Path = prefix + p.Path
			if p.MetaPath != "" {
				p.MetaPath = prefix + p.MetaPath
			}
			for k, f := range p.FieldPaths {
				p.FieldPaths[k] = prefix + f
			}
			for j := range p.Containers {
				p.Containers[j].Path = prefix + p.Containers[j].Path
			}
			for j := range p.Volumes {
				p.Volumes[j].Path = prefix + p.Volumes[j].Path
			}
			w.wl.Pods = append(w.wl.Pods, p)
		}
	}
}

// patch records an Argo podSpecPatch, which can change the pod's images, as an
// unrecognised use.
func (w *walker) patch(m map[string]any, path string) {
	if p, ok := m["podSpecPatch"].(string); ok && strings.TrimSpace(p) != "" {
		w.unrecognised(path+".podSpecPatch", "", "a podSpecPatch can change the pod's containers and images, which cannot be checked")
	}
}

// tekton walks the Tekton kinds; it returns false for others.
func (w *walker) tekton(root map[string]any) bool {
	spec, _ := root["spec"].(map[string]any)
	switch w.wl.Object.Kind {
	case "Task", "ClusterTask", "StepAction", "TaskRun", "Pipeline", "PipelineRun":
		if spec == nil {
			return true
		}
	default:
		return false
	}
	switch w.wl.Object.Kind {
	case "TaskRun", "PipelineRun":
		w.podMeta = true // Tekton copies a run's annotations to its pods
	}
	switch w.wl.Object.Kind {
	case "Task", "ClusterTask":
		w.task(spec, "spec", nil, "")
	case "StepAction":
		b := w.build("spec")
		b.add("containers", "step", "spec", spec, stepFields(nil, spec))
		b.done()
	case "TaskRun":
		pt, _ := spec["podTemplate"].(map[string]any)
		if ts, ok := spec["taskSpec"].(map[string]any); ok {
			w.task(ts, "spec.taskSpec", pt, "spec.podTemplate")
		}
		w.tektonRef(spec["taskRef"], "spec.taskRef")
	case "Pipeline":
		w.pipeline(spec, "spec", nil, "")
	case "PipelineRun":
		pt, _ := spec["podTemplate"].(map[string]any)
		ptPath := "spec.podTemplate"
		if trt, ok := spec["taskRunTemplate"].(map[string]any); ok {
			if p, ok := trt["podTemplate"].(map[string]any); ok {
				pt, ptPath = p, "spec.taskRunTemplate.podTemplate"
			}
		}
		if ps, ok := spec["pipelineSpec"].(map[string]any); ok {
			w.pipeline(ps, "spec.pipelineSpec", pt, ptPath)
		}
		w.tektonRef(spec["pipelineRef"], "spec.pipelineRef")
	}
	return true
}

// pipeline walks the inline task specs of a pipeline's tasks and finally tasks.
func (w *walker) pipeline(spec map[string]any, path string, pt map[string]any, ptPath string) {
	for _, list := range []string{"tasks", "finally"} {
		items, _ := spec[list].([]any)
		for i, it := range items {
			t, ok := it.(map[string]any)
			if !ok {
				continue
			}
			tp := path + "." + item(list, t, i)
			if ts, ok := t["taskSpec"].(map[string]any); ok {
				w.task(ts, tp+".taskSpec", pt, ptPath)
			}
			w.tektonRef(t["taskRef"], tp+".taskRef")
			w.tektonRef(t["pipelineRef"], tp+".pipelineRef")
		}
	}
}

// task walks a Tekton task spec at path as one pod: its steps over the
// stepTemplate, its sidecars and volumes, with the pod template pt (at ptPath) of
// the run.
func (w *walker) task(spec map[string]any, path string, pt map[string]any, ptPath string) {
	b := w.build(path)
	b.podFields(pt, ptPath)
	st, _ := spec["stepTemplate"].(map[string]any)
	if st != nil && w.mark(st) {
		w.imageAt(ContainerImage, st, "image", path+".stepTemplate.image", "stepTemplate")
	}
	steps, _ := spec["steps"].([]any)
	for i, it := range steps {
		if s, ok := it.(map[string]any); ok {
			name, _ := s["name"].(string)
			sp := path + "." + item("steps", s, i)
			b.add("containers", name, sp, s, stepFields(st, s))
			w.tektonRef(s["ref"], sp+".ref")
		}
	}
	sidecars, _ := spec["sidecars"].([]any)
	for i, it := range sidecars {
		if s, ok := it.(map[string]any); ok {
			name, _ := s["name"].(string)
			b.add("containers", name, path+"."+item("sidecars", s, i), s, stepFields(nil, s))
		}
	}
	if len(b.pod.Containers) > 0 {
		b.addVolumes(pt["volumes"], ptPath+".volumes")
		b.addVolumes(spec["volumes"], path+".volumes")
	}
	b.done()
}

// tektonRef records what a Tekton taskRef, pipelineRef or step ref v at path runs
// from outside the object: a bundle is a package image; a remote resolver's
// definition can run any image, an unrecognised use. A ref by name or by the
// cluster resolver names an object in the cluster, walked where it is applied.
func (w *walker) tektonRef(v any, path string) {
	r, ok := v.(map[string]any)
	if !ok || !w.mark(r) {
		return
	}
	if b, ok := r["bundle"]; ok && b != nil && b != "" {
		w.bundle(r, "bundle", path+".bundle")
	}
	resolver, ok := r["resolver"]
	if !ok || resolver == nil || resolver == "" || resolver == "cluster" {
		return
	}
	if resolver != "bundles" {
		w.unrecognised(path+".resolver", "", fmt.Sprintf("the %v resolver fetches a definition that can run any image, which cannot be checked", resolver))
		return
	}
	params, _ := r["params"].([]any)
	for i, it := range params {
		if p, ok := it.(map[string]any); ok && p["name"] == "bundle" {
			w.mark(p)
			w.bundle(p, "value", path+".params"+item("", p, i)+".value")
			return
		}
	}
	w.unrecognised(path+".params", "", "the bundles resolver without a bundle parameter cannot be checked")
}

// bundle records the Tekton bundle under key of m at path.
func (w *walker) bundle(m map[string]any, key, path string) {
	if s, ok := m[key].(string); ok && strings.Contains(s, "$(") {
		w.unrecognised(path, s, "the bundle is a parameter, chosen when the pipeline runs, so it cannot be checked")
		return
	}
	w.imageAt(PackageImage, m, key, path, "")
}

// crossplane records the package of a Crossplane package kind.
func (w *walker) crossplane(root map[string]any) {
	switch w.wl.Object.Kind {
	case "Provider", "Configuration", "Function":
	default:
		return
	}
	if spec, ok := root["spec"].(map[string]any); ok {
		w.imageAt(PackageImage, spec, "package", "spec.package", "")
	}
}

// stepFields returns a Tekton step (or sidecar) over its step template as a
// container: the step's fields win, objects merge, and computeResources become
// resources.
func stepFields(template, step map[string]any) map[string]any {
	out := merge(template, step)
	if r, ok := out["computeResources"]; ok {
		if _, has := out["resources"]; !has {
			out["resources"] = r
		}
	}
	return out
}

// merge returns base with over's fields over it, merging objects field by field;
// neither is changed.
func merge(base, over map[string]any) map[string]any {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range over {
		bm, ok1 := out[k].(map[string]any)
		om, ok2 := v.(map[string]any)
		if ok1 && ok2 {
			out[k] = merge(bm, om)
			continue
		}
		out[k] = v
	}
	return out
}
