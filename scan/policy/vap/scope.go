package vap

import (
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/shipkit/shipkit/internal/kindscope"
)

// ErrUnknownKind is wrapped by the error from [Policies.Eval] for an object whose
// kind's resource and scope are not known: see [WithRESTMapper] and
// [WithClusterScopedKinds].
var ErrUnknownKind = kindscope.ErrUnknownKind

// WithRESTMapper maps kinds that are not Kubernetes' own to resources and scopes
// with m: custom resources whose CRD is already installed, such as cert-manager's
// ClusterIssuer. Its answer outranks a CustomResourceDefinition among the objects
// and the listed kinds; one that contradicts it is an error from Eval. m is
// typically a cluster's discovery (restmapper.NewDeferredDiscoveryRESTMapper).
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
// resource, which resourceRules match, is guessed as the lower-case plural of the
// kind (ClusterIssuer: clusterissuers); give an irregular one with [WithResource].
// A kind also named by [WithNamespacedKinds], or Kubernetes' own kind with the other
// scope, is an error from Eval.
func WithClusterScopedKinds(kinds ...schema.GroupKind) Option {
	return func(c *config) {
		c.scopes.Cluster = append(c.scopes.Cluster, kindscope.CheckKinds(&c.errs, "WithClusterScopedKinds", kinds)...)
	}
}

// WithNamespacedKinds names custom kinds that are namespaced, offline (see
// [WithRESTMapper]), e.g. {Group: "cert-manager.io", Kind: "Certificate"}. Their
// resource, which resourceRules match, is guessed as the lower-case plural of the
// kind (Certificate: certificates); give an irregular one with [WithResource]. A
// kind also named by [WithClusterScopedKinds], or Kubernetes' own kind with the
// other scope, is an error from Eval.
func WithNamespacedKinds(kinds ...schema.GroupKind) Option {
	return func(c *config) {
		c.scopes.Namespaced = append(c.scopes.Namespaced, kindscope.CheckKinds(&c.errs, "WithNamespacedKinds", kinds)...)
	}
}

// WithResource gives the resource of a kind named by [WithClusterScopedKinds] or
// [WithNamespacedKinds] when it is not the guessed lower-case plural, e.g.
// WithResource({Group: "example.com", Kind: "Octopus"}, "octopi"). A kind not
// named by either is an error from Eval.
func WithResource(kind schema.GroupKind, resource string) Option {
	return func(c *config) {
		kindscope.CheckKinds(&c.errs, "WithResource", []schema.GroupKind{kind})
		if msgs := validation.IsDNS1123Subdomain(resource); len(msgs) > 0 {
			c.errs.Addf("WithResource(%s, %q): not a resource name: %s", kind, resource, strings.Join(msgs, "; "))
			return
		}
		if c.scopes.Resources == nil {
			c.scopes.Resources = map[schema.GroupKind]string{}
		}
		c.scopes.Resources[kind] = resource
	}
}

// scopeHint names the options that make a kind's scope known.
const scopeHint = "vap.WithClusterScopedKinds or WithNamespacedKinds, or a cluster's mapper with WithRESTMapper"

// mappingFor maps kinds to resources and scopes (internal/kindscope): Kubernetes'
// kinds, the caller's RESTMapper, the CRDs among objs, the listed kinds.
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
