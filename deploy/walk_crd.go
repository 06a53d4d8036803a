package deploy

import (
	"maps"
	"strings"
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
			if ts, ok := t["taskSpec"].(map[string]any); ok {
				w.task(ts, path+"."+item(list, t, i)+".taskSpec", pt, ptPath)
			}
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
			b.add("containers", name, path+"."+item("steps", s, i), s, stepFields(st, s))
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
