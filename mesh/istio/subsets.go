package istio

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/shipkit/shipkit/mesh"
	"github.com/shipkit/shipkit/mesh/internal/kube"
)

// destinationRule returns the route's DestinationRule, or nil when there is none
// yet. One for another host is a [mesh.PrerequisiteError].
func (r *Router) destinationRule(ctx context.Context) (*unstructured.Unstructured, error) {
	dr, err := r.c.Get(ctx, destinationRules, r.route.Namespace, r.route.DestinationRule)
	if errors.Is(err, mesh.ErrPrerequisite) {
		return nil, nil // not found: the router creates it
	}
	if err != nil {
		return nil, err
	}
	if host, _, _ := unstructured.NestedString(dr.Object, "spec", "host"); !r.isService(host) {
		return nil, &mesh.PrerequisiteError{
			Object:  kube.Name(destinationRules.Kind, r.route.Namespace, r.route.DestinationRule),
			Problem: fmt.Sprintf("is for host %q, not for Service %s", host, r.route.Service),
		}
	}
	return dr, nil
}

// applySubsets makes the DestinationRule's stable and canary subsets select the two
// versions, creating the DestinationRule when there is none. Other subsets, the
// subsets' other labels and fields, and the rest of the object stay.
func (r *Router) applySubsets(ctx context.Context) error {
	dr, err := r.destinationRule(ctx)
	if err != nil {
		return err
	}
	apply := &unstructured.Unstructured{Object: map[string]any{}}
	apply.SetName(r.route.DestinationRule)
	apply.SetNamespace(r.route.Namespace)
	var subsets []any
	if dr == nil {
		apply.Object["spec"] = map[string]any{"host": r.route.Service}
	} else {
		apply.Object["spec"] = map[string]any{}
		apply.SetResourceVersion(dr.GetResourceVersion())
		subsets, _, _ = unstructured.NestedSlice(dr.Object, "spec", "subsets")
	}
	before := runtime.DeepCopyJSONValue(subsets)
	for _, s := range []struct{ name, version string }{{StableSubset, r.route.Stable}, {CanarySubset, r.route.Canary}} {
		var subset map[string]any
		for _, x := range subsets {
			if name, _, _ := unstructured.NestedString(asMap(x), "name"); name == s.name {
				subset = asMap(x)
			}
		}
		if subset == nil {
			subset = map[string]any{"name": s.name}
			subsets = append(subsets, subset)
		}
		labels, _, _ := unstructured.NestedMap(subset, "labels")
		if labels == nil {
			labels = map[string]any{}
		}
		labels[r.route.VersionLabel] = s.version
		subset["labels"] = labels
	}
	if dr != nil && equality.Semantic.DeepEqual(before, subsets) {
		return nil
	}
	apply.Object["spec"].(map[string]any)["subsets"] = subsets
	if _, err := r.c.Apply(ctx, destinationRules, apply); err != nil {
		return err
	}
	r.log.DebugContext(ctx, "destination rule applied", "name", r.route.DestinationRule,
		"stable", r.route.Stable, "canary", r.route.Canary)
	return nil
}
