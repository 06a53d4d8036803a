package vap

import (
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/shipkit/shipkit/internal/kindscope"
	"github.com/shipkit/shipkit/internal/option"
)

// ErrUnknownKind is wrapped by the error from [Policies.Eval] for an object whose
// kind's resource and scope are not known: see [WithRESTMapper] and
// [WithClusterScopedKinds].
var ErrUnknownKind = kindscope.ErrUnknownKind

// WithRESTMapper maps kinds that are neither Kubernetes' nor defined by a
// CustomResourceDefinition among the objects to resources and scopes with m:
// custom resources whose CRD is already installed, such as cert-manager's
// ClusterIssuer. m is typically a cluster's discovery
// (restmapper.NewDeferredDiscoveryRESTMapper).
func WithRESTMapper(m meta.RESTMapper) Option {
	return func(c *config) {
		if m == nil {
			c.errs.Addf("WithRESTMapper(nil)")
		}
		c.scopes.Mapper = m
	}
}

// WithClusterScopedKinds names custom kinds that are cluster-scoped, offline (see
// [WithRESTMapper]), e.g. {Group: "cert-manager.io", Kind: "ClusterIssuer"}. Their
// resource is the lower-case plural of the kind.
func WithClusterScopedKinds(kinds ...schema.GroupKind) Option {
	return func(c *config) {
		c.scopes.Cluster = append(c.scopes.Cluster, checkKinds(&c.errs, "WithClusterScopedKinds", kinds)...)
	}
}

// WithNamespacedKinds names custom kinds that are namespaced, offline (see
// [WithRESTMapper]), e.g. {Group: "cert-manager.io", Kind: "Certificate"}. Their
// resource is the lower-case plural of the kind.
func WithNamespacedKinds(kinds ...schema.GroupKind) Option {
	return func(c *config) {
		c.scopes.Namespaced = append(c.scopes.Namespaced, checkKinds(&c.errs, "WithNamespacedKinds", kinds)...)
	}
}

func checkKinds(errs *option.List, opt string, kinds []schema.GroupKind) []schema.GroupKind {
	for _, gk := range kinds {
		if gk.Kind == "" {
			errs.Addf("%s: a kind without a name (group %q)", opt, gk.Group)
		}
	}
	return kinds
}

// scopeHint names the options that make a kind's scope known.
const scopeHint = "vap.WithClusterScopedKinds or WithNamespacedKinds, or a cluster's mapper with WithRESTMapper"

// mappingFor maps kinds to resources and scopes (internal/kindscope): the CRDs
// among objs, the listed kinds, the caller's RESTMapper, Kubernetes' kinds.
func (ps *Policies) mappingFor(objs []*unstructured.Unstructured) (func(schema.GroupVersionKind) (schema.GroupVersionResource, meta.RESTScope, error), error) {
	scopes, err := kindscope.New(ps.scopes, objs)
	if err != nil {
		return nil, err
	}
	return func(gvk schema.GroupVersionKind) (schema.GroupVersionResource, meta.RESTScope, error) {
		k, err := scopes.Lookup(gvk, scopeHint)
		if err != nil {
			return schema.GroupVersionResource{}, nil, err
		}
		return gvk.GroupVersion().WithResource(k.Resource), k.Scope(), nil
	}, nil
}
