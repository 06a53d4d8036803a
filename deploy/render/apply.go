package render

import "k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

// Apply applies opts to objects rendered elsewhere (a Helm chart, by
// deploy/render/helm), in place, exactly as [Renderer.Render] applies them to its
// own: images pinned ([WithImages], [WithImage], [AllowUnusedImages]), then the
// app.kubernetes.io labels ([WithApp]) and the revision ([WithRevision]). It is the
// one owner of those transformations, so a chart and a kustomization rendered
// with the same options are pinned and labelled alike.
func Apply(objs []*unstructured.Unstructured, opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o.apply(objs)
}
