package render

import (
	"maps"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
)

func (o options) apply(objs []*unstructured.Unstructured) error {
	if !o.pins.empty() {
		if err := o.pins.apply(objs); err != nil {
			return err
		}
	}
	if labels := o.app.labels(); len(labels) > 0 {
		for _, obj := range objs {
			obj.SetLabels(merge(obj.GetLabels(), labels))
			w, _ := deploy.Walk(obj)
			for _, p := range w.Pods {
				if p.Template != nil {
					labelTemplate(p.Template, labels)
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

// labelTemplate sets labels on a pod template's metadata.
func labelTemplate(tmpl map[string]any, labels map[string]string) {
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

// merge copies src into dst (a new map when dst is nil) and returns dst.
func merge(dst, src map[string]string) map[string]string {
	if dst == nil {
		dst = make(map[string]string, len(src))
	}
	maps.Copy(dst, src)
	return dst
}
