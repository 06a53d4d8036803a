package gatekeeper

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/shipkit/shipkit/internal/kindscope"
)

// WithDefaultNamespace judges a namespaced object without metadata.namespace in
// namespace ns, as kubectl apply -n ns or helm install -n ns would create it (Helm
// leaves it empty). Without it such an object is an error from [Policies.Eval],
// never judged as if cluster-scoped, where a Constraint's namespaces would not
// select it.
func WithDefaultNamespace(ns string) Option {
	return func(c *config) {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			c.errs.Addf("WithDefaultNamespace(%q): not a namespace name: %s", ns, strings.Join(msgs, "; "))
			return
		}
		c.defaultNS = ns
	}
}

// WithRESTMapper tells the scope of kinds that are not Kubernetes' own: custom
// resources whose CRD is already installed, such as cert-manager's ClusterIssuer.
// Its answer outranks a CustomResourceDefinition among the objects (or
// [WithInventory]) and the listed kinds; one that contradicts it is an error from
// Eval. m is typically a cluster's discovery (restmapper.NewDeferredDiscoveryRESTMapper).
func WithRESTMapper(m meta.RESTMapper) Option {
	return func(c *config) {
		if m == nil {
			c.errs.Addf("WithRESTMapper: mapper is nil")
		}
		c.scopes.Mapper = m
	}
}

// WithClusterScopedKinds names custom kinds that are cluster-scoped, offline (see
// [WithRESTMapper]), e.g. {Group: "cert-manager.io", Kind: "ClusterIssuer"}. Only
// the scope is used (Gatekeeper matches kinds, not resources). A kind also named by
// [WithNamespacedKinds], or Kubernetes' own kind with the other scope, is an error
// from Eval.
func WithClusterScopedKinds(kinds ...schema.GroupKind) Option {
	return func(c *config) {
		c.scopes.Cluster = append(c.scopes.Cluster, kindscope.CheckKinds(&c.errs, "WithClusterScopedKinds", kinds)...)
	}
}

// WithNamespacedKinds names custom kinds that are namespaced, offline (see
// [WithRESTMapper]), e.g. {Group: "cert-manager.io", Kind: "Certificate"}. A kind
// also named by [WithClusterScopedKinds], or Kubernetes' own kind with the other
// scope, is an error from Eval.
func WithNamespacedKinds(kinds ...schema.GroupKind) Option {
	return func(c *config) {
		c.scopes.Namespaced = append(c.scopes.Namespaced, kindscope.CheckKinds(&c.errs, "WithNamespacedKinds", kinds)...)
	}
}

// scopeHint names the options that make a kind's scope known.
const scopeHint = "gatekeeper.WithClusterScopedKinds or WithNamespacedKinds, or a cluster's mapper with WithRESTMapper"

// place returns o in the namespace it will be created in: without a namespace when
// its kind is cluster-scoped (the API server drops one), as it is when it has one,
// else a copy in the default namespace. A kind of unknown scope is an error.
func (p *Policies) place(o *unstructured.Unstructured, scopes *kindscope.Scopes) (*unstructured.Unstructured, error) {
	gvk := o.GroupVersionKind()
	if gvk.Kind == "" || gvk.Version == "" {
		return o, nil // evalOne reports it
	}
	cluster, err := scopes.ClusterScoped(gvk, scopeHint)
	switch {
	case err != nil:
		return nil, err
	case cluster && o.GetNamespace() != "":
		c := o.DeepCopy()
		c.SetNamespace("")
		return c, nil
	case cluster || o.GetNamespace() != "":
		return o, nil
	case p.defaultNS == "":
		return nil, fmt.Errorf("%s is namespaced but has no metadata.namespace: set it, or give the namespace it will be applied in with WithDefaultNamespace", gvk.Kind)
	}
	c := o.DeepCopy()
	c.SetNamespace(p.defaultNS)
	return c, nil
}

// ErrUnknownKind is wrapped by the error from [Policies.Eval] for an object whose
// kind's scope is not known: see [WithRESTMapper] and [WithClusterScopedKinds].
var ErrUnknownKind = kindscope.ErrUnknownKind
