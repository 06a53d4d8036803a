package render

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func (o options) apply(objs []*unstructured.Unstructured) error {
	if len(o.images) > 0 {
		if err := PinImages(objs, o.images...); err != nil {
			return err
		}
	}
	if labels := o.app.labels(); len(labels) > 0 {
		for _, obj := range objs {
			obj.SetLabels(merge(obj.GetLabels(), labels))
			for _, tmpl := range podTemplates(obj.Object) {
				meta, _ := tmpl["metadata"].(map[string]any)
				if meta == nil {
					meta = map[string]any{}
					tmpl["metadata"] = meta
				}
				l, _ := meta["labels"].(map[string]any)
				if l == nil {
					l = map[string]any{}
					meta["labels"] = l
				}
				for k, v := range labels {
					l[k] = v
				}
			}
		}
	}
	if o.revision != "" {
		for _, obj := range objs {
			obj.SetAnnotations(merge(obj.GetAnnotations(), map[string]string{RevisionAnnotation: o.revision}))
		}
	}
	return nil
}

func merge(dst, src map[string]string) map[string]string {
	if dst == nil {
		dst = map[string]string{}
	}
	for k, v := range src {
		dst[k] = v
	}
	return dst
}

// podTemplates returns the pod templates of well-known workloads: spec.template of
// Deployments, StatefulSets, DaemonSets, ReplicaSets and Jobs, and
// spec.jobTemplate.spec.template of CronJobs.
func podTemplates(obj map[string]any) []map[string]any {
	var out []map[string]any
	spec, _ := obj["spec"].(map[string]any)
	if t, ok := spec["template"].(map[string]any); ok {
		if _, ok := t["spec"].(map[string]any); ok {
			out = append(out, t)
		}
	}
	if jt, ok := spec["jobTemplate"].(map[string]any); ok {
		out = append(out, podTemplates(jt)...)
	}
	return out
}

// containerLists are the keys whose values are lists of containers in a pod spec.
var containerLists = []string{"containers", "initContainers", "ephemeralContainers"}

// PinImages replaces, in every container of objs, each image whose repository is the
// repository of one of digests by that repository at the digest (see [WithImages]).
// An image that cannot be parsed is an error naming the object and container.
func PinImages(objs []*unstructured.Unstructured, digests ...name.Digest) error {
	byRepo := map[string]name.Digest{}
	for _, d := range digests {
		byRepo[d.Context().Name()] = d
	}
	for _, obj := range objs {
		var err error
		walkContainers(obj.Object, func(c map[string]any) {
			img, _ := c["image"].(string)
			if img == "" || err != nil {
				return
			}
			ref, perr := name.ParseReference(img)
			if perr != nil {
				err = fmt.Errorf("render: %s/%s: container %v: image %q: %w", obj.GetKind(), obj.GetName(), c["name"], img, perr)
				return
			}
			d, ok := byRepo[ref.Context().Name()]
			if !ok {
				return
			}
			c["image"] = repoAsWritten(img) + "@" + d.DigestStr()
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// repoAsWritten strips the tag and digest from an image reference, keeping the
// repository as the manifest spells it.
func repoAsWritten(img string) string {
	if i := strings.Index(img, "@"); i >= 0 {
		img = img[:i]
	}
	if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
		img = img[:i]
	}
	return img
}

// walkContainers calls fn for every container map anywhere in v.
func walkContainers(v any, fn func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if isContainerList(k) {
				if list, ok := child.([]any); ok {
					for _, c := range list {
						if cm, ok := c.(map[string]any); ok {
							fn(cm)
						}
					}
					continue
				}
			}
			walkContainers(child, fn)
		}
	case []any:
		for _, child := range v {
			walkContainers(child, fn)
		}
	}
}

func isContainerList(k string) bool {
	for _, l := range containerLists {
		if k == l {
			return true
		}
	}
	return false
}
