package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// object is what the rules read from one Kubernetes object.
type object struct {
	kind, namespace, name string

	// pod is set for Pods and pod-template workloads.
	pod *podTemplate
	// secretKeys holds, for a Secret, the keys under "data" and "stringData".
	secretKeys map[string][]string
}

// podTemplate is the pod part of an object.
type podTemplate struct {
	// path is the field path of the pod spec in the object, e.g. "spec.template.spec".
	path string
	// metaPath is the field path of the pod's metadata, e.g. "spec.template.metadata".
	metaPath string
	meta     metav1.ObjectMeta
	spec     corev1.PodSpec
}

// templatePaths says where each kind keeps its pod template, by API group and kind.
var templatePaths = map[[2]string][]string{
	{"", "ReplicationController"}: {"spec", "template"},
	{"", "PodTemplate"}:           {"template"},
	{"apps", "Deployment"}:        {"spec", "template"},
	{"apps", "StatefulSet"}:       {"spec", "template"},
	{"apps", "DaemonSet"}:         {"spec", "template"},
	{"apps", "ReplicaSet"}:        {"spec", "template"},
	{"extensions", "Deployment"}:  {"spec", "template"},
	{"extensions", "DaemonSet"}:   {"spec", "template"},
	{"extensions", "ReplicaSet"}:  {"spec", "template"},
	{"batch", "Job"}:              {"spec", "template"},
	{"batch", "CronJob"}:          {"spec", "jobTemplate", "spec", "template"},
}

// read returns what the rules need from u, nil for kinds no rule looks at, or an
// error naming the object when its pod template or Secret data is malformed.
func read(u *unstructured.Unstructured) (o *object, err error) {
	gvk := u.GroupVersionKind()
	o = &object{kind: gvk.Kind, namespace: u.GetNamespace(), name: u.GetName()}
	defer func() {
		// The converter reflects over arbitrary input; a value it cannot handle is
		// a malformed object, not a reason to take the caller down.
		if r := recover(); r != nil {
			o, err = nil, fmt.Errorf("%s %s: unreadable: %v", o.kind, objectName(o.namespace, o.name), r)
		}
	}()
	switch {
	case gvk.Group == "" && gvk.Kind == "Pod":
		var pod corev1.Pod
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &pod); err != nil {
			return nil, fmt.Errorf("%s %s: reading the pod: %w", o.kind, objectName(o.namespace, o.name), err)
		}
		o.pod = &podTemplate{path: "spec", metaPath: "metadata", meta: pod.ObjectMeta, spec: pod.Spec}
	case gvk.Group == "" && gvk.Kind == "Secret":
		o.secretKeys = map[string][]string{}
		for _, field := range []string{"data", "stringData"} {
			v, ok := u.Object[field]
			if !ok || v == nil {
				continue
			}
			m, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s %s: %s is a %T, not a map", o.kind, objectName(o.namespace, o.name), field, v)
			}
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			o.secretKeys[field] = keys
		}
	case gvk.Group == "" && gvk.Kind == "ServiceAccount":
	default:
		path, ok := templatePaths[[2]string{gvk.Group, gvk.Kind}]
		if !ok {
			return nil, nil
		}
		p := strings.Join(path, ".")
		v, found, err := unstructured.NestedFieldNoCopy(u.Object, path...)
		if err != nil || !found || v == nil {
			return nil, fmt.Errorf("%s %s: no pod template at %s", o.kind, objectName(o.namespace, o.name), p)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s %s: the pod template at %s is a %T, not an object", o.kind, objectName(o.namespace, o.name), p, v)
		}
		var tmpl corev1.PodTemplateSpec
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &tmpl); err != nil {
			return nil, fmt.Errorf("%s %s: reading the pod template at %s: %w", o.kind, objectName(o.namespace, o.name), p, err)
		}
		o.pod = &podTemplate{path: p + ".spec", metaPath: p + ".metadata", meta: tmpl.ObjectMeta, spec: tmpl.Spec}
	}
	return o, nil
}

// serviceAccounts maps "namespace/name" of each ServiceAccount among objs to its
// automountServiceAccountToken (nil when unset).
func serviceAccounts(objs []*unstructured.Unstructured) map[string]*bool {
	m := map[string]*bool{}
	for _, u := range objs {
		if u == nil || u.GetKind() != "ServiceAccount" || u.GroupVersionKind().Group != "" {
			continue
		}
		var v *bool
		if b, ok := u.Object["automountServiceAccountToken"].(bool); ok {
			v = &b
		}
		m[u.GetNamespace()+"/"+u.GetName()] = v
	}
	return m
}

// containerRef is one container of a pod spec with its field path.
type containerRef struct {
	c    *corev1.Container
	list string // "initContainers", "containers" or "ephemeralContainers"
	path string // e.g. spec.template.spec.containers[name=web]
}

// containers lists every container of the pod in the order the Pod Security
// evaluator visits them.
func (p *podTemplate) containers() []containerRef {
	var refs []containerRef
	add := func(list string, c *corev1.Container) {
		refs = append(refs, containerRef{c: c, list: list, path: fmt.Sprintf("%s.%s[name=%s]", p.path, list, c.Name)})
	}
	for i := range p.spec.InitContainers {
		add("initContainers", &p.spec.InitContainers[i])
	}
	for i := range p.spec.Containers {
		add("containers", &p.spec.Containers[i])
	}
	for i := range p.spec.EphemeralContainers {
		add("ephemeralContainers", (*corev1.Container)(&p.spec.EphemeralContainers[i].EphemeralContainerCommon))
	}
	return refs
}

// withOnly returns a copy of spec whose containers are c alone, in its own list.
func withOnly(spec corev1.PodSpec, ref containerRef) corev1.PodSpec {
	spec.InitContainers, spec.Containers, spec.EphemeralContainers = nil, nil, nil
	switch ref.list {
	case "initContainers":
		spec.InitContainers = []corev1.Container{*ref.c}
	case "containers":
		spec.Containers = []corev1.Container{*ref.c}
	default:
		spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon(*ref.c)}}
	}
	return spec
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
