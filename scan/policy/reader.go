package policy

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/shipkit/shipkit/deploy"
)

// object is what the rules read from one Kubernetes object.
type object struct {
	ref deploy.ObjectRef

	// pods holds the pod specs of Pods, workloads and the custom resources
	// deploy.Walk interprets.
	pods []*podTemplate
	// unrecognised holds the values that look like images where deploy.Walk
	// cannot interpret them.
	unrecognised []deploy.ImageUse
	// packages holds the package images (Tekton bundles, Crossplane packages)
	// deploy.Walk finds.
	packages []deploy.ImageUse
	// secretKeys holds, for a Secret, the keys under "data" and "stringData".
	secretKeys map[string][]string
}

// podTemplate is one pod spec of an object.
type podTemplate struct {
	// path is the field path of the pod spec in the object, e.g. "spec.template.spec".
	path string
	// metaPath is the field path of the pod's metadata, e.g. "spec.template.metadata".
	metaPath string
	meta     metav1.ObjectMeta
	spec     corev1.PodSpec
	// containers are the spec's containers with their field paths, in the order
	// the Pod Security evaluator visits them.
	containers []containerRef
	// volumePaths holds the field path of each of spec.Volumes.
	volumePaths []string
	// walked is the pod spec as deploy.Walk found it.
	walked deploy.PodSpec
}

// field returns the field path of a pod-level field (securityContext.runAsNonRoot).
func (p *podTemplate) field(f string) string { return p.walked.FieldPath(f) }

// read returns what the rules need from u, nil for kinds no rule looks at, or an
// error naming the object when its pod template or Secret data is malformed.
func read(u *unstructured.Unstructured) (o *object, err error) {
	o = &object{ref: deploy.RefOf(u)}
	defer func() {
		// The converter reflects over arbitrary input; a value it cannot handle is
		// a malformed object, not a reason to take the caller down.
		if r := recover(); r != nil {
			o, err = nil, fmt.Errorf("%s: unreadable: %v", o.ref, r)
		}
	}()
	switch {
	case o.ref.Group == "" && o.ref.Kind == "Secret":
		o.secretKeys = map[string][]string{}
		for _, field := range []string{"data", "stringData"} {
			v, ok := u.Object[field]
			if !ok || v == nil {
				continue
			}
			m, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: %s is a %T, not a map", o.ref, field, v)
			}
			o.secretKeys[field] = sortedKeys(m)
		}
		return o, nil
	case o.ref.Group == "" && o.ref.Kind == "ServiceAccount":
		return o, nil
	}
	w, err := deploy.Walk(u)
	if err != nil {
		return nil, err
	}
	for _, use := range w.Images {
		switch use.Kind {
		case deploy.UnrecognisedImage:
			o.unrecognised = append(o.unrecognised, use)
		case deploy.PackageImage:
			o.packages = append(o.packages, use)
		}
	}
	for _, p := range w.Pods {
		pt, err := readPod(o.ref, p)
		if err != nil {
			return nil, err
		}
		o.pods = append(o.pods, pt)
	}
	if len(o.pods) == 0 && len(o.unrecognised) == 0 && len(o.packages) == 0 {
		return nil, nil
	}
	return o, nil
}

// readPod converts one pod spec the walker found into the API's types.
func readPod(ref deploy.ObjectRef, p deploy.PodSpec) (*podTemplate, error) {
	pt := &podTemplate{path: p.Path, metaPath: p.MetaPath, walked: p}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(p.Spec, &pt.spec); err != nil {
		return nil, fmt.Errorf("%s: reading the pod spec at %s: %w", ref, p.Path, err)
	}
	if p.Meta != nil {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(p.Meta, &pt.meta); err != nil {
			return nil, fmt.Errorf("%s: reading the pod metadata at %s: %w", ref, p.MetaPath, err)
		}
	}
	next := map[string]int{}
	for _, c := range p.Containers {
		i := next[c.List]
		next[c.List]++
		var ptr *corev1.Container
		switch {
		case c.List == "initContainers" && i < len(pt.spec.InitContainers):
			ptr = &pt.spec.InitContainers[i]
		case c.List == "containers" && i < len(pt.spec.Containers):
			ptr = &pt.spec.Containers[i]
		case c.List == "ephemeralContainers" && i < len(pt.spec.EphemeralContainers):
			ptr = (*corev1.Container)(&pt.spec.EphemeralContainers[i].EphemeralContainerCommon)
		default:
			return nil, fmt.Errorf("%s: reading the pod spec at %s: container %s is not in its list", ref, p.Path, c.Path)
		}
		pt.containers = append(pt.containers, containerRef{c: ptr, list: c.List, path: c.Path})
	}
	if len(p.Volumes) != len(pt.spec.Volumes) {
		return nil, fmt.Errorf("%s: reading the pod spec at %s: %d volumes, %d readable", ref, p.Path, len(pt.spec.Volumes), len(p.Volumes))
	}
	for _, v := range p.Volumes {
		pt.volumePaths = append(pt.volumePaths, v.Path)
	}
	return pt, nil
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
