// Package kindscope is the one owner of "is this kind cluster-scoped": the offline
// policy engines (scan/policy/gatekeeper, scan/policy/vap) ask it where an object
// without metadata.namespace will live.
//
// A kind is known from, in order: a CustomResourceDefinition among the objects in
// view (it is what will be installed), the kinds the caller listed, the caller's
// RESTMapper (a cluster's discovery), then Kubernetes' own kinds. A kind known from
// none of them is an error wrapping [ErrUnknownKind], never assumed namespaced: a
// cluster-scoped custom resource (cert-manager's ClusterIssuer) copied into a
// namespace would be judged as no admission controller sees it.
package kindscope

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ErrUnknownKind is wrapped by the error for a kind whose scope is not known.
var ErrUnknownKind = errors.New("scope of kind unknown")

// Kind is what is known of a kind: its resource (lower-case plural) and scope.
type Kind struct {
	Resource string
	Cluster  bool // cluster-scoped
}

// Scope returns the kind's scope as a RESTMapper gives it.
func (k Kind) Scope() meta.RESTScope {
	if k.Cluster {
		return meta.RESTScopeRoot
	}
	return meta.RESTScopeNamespace
}

// Options is what a caller knows beyond Kubernetes' kinds and the objects in view.
type Options struct {
	Mapper     meta.RESTMapper    // a cluster's discovery; nil offline
	Cluster    []schema.GroupKind // kinds the caller says are cluster-scoped
	Namespaced []schema.GroupKind // kinds the caller says are namespaced
}

// Scopes answers for the kinds of one batch of objects.
type Scopes struct {
	opts  Options
	known map[schema.GroupKind]Kind // CRDs in view, then the listed kinds
}

// New returns the scopes of the kinds known from opts and the CustomResourceDefinitions
// among objs.
func New(opts Options, objs ...[]*unstructured.Unstructured) *Scopes {
	s := &Scopes{opts: opts, known: map[schema.GroupKind]Kind{}}
	for _, gk := range opts.Namespaced {
		s.known[gk] = Kind{Resource: guess(gk), Cluster: false}
	}
	for _, gk := range opts.Cluster {
		s.known[gk] = Kind{Resource: guess(gk), Cluster: true}
	}
	crd := schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}
	for _, list := range objs {
		for _, o := range list {
			if o.GroupVersionKind().GroupKind() != crd {
				continue
			}
			group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
			plural, _, _ := unstructured.NestedString(o.Object, "spec", "names", "plural")
			scope, _, _ := unstructured.NestedString(o.Object, "spec", "scope")
			if kind == "" {
				continue
			}
			gk := schema.GroupKind{Group: group, Kind: kind}
			if plural == "" {
				plural = guess(gk)
			}
			s.known[gk] = Kind{Resource: plural, Cluster: scope == "Cluster"}
		}
	}
	return s
}

// Lookup returns the resource and scope of gvk's kind, or an error wrapping
// [ErrUnknownKind] naming the kind and hint, the caller's options that would make
// it known.
func (s *Scopes) Lookup(gvk schema.GroupVersionKind, hint string) (Kind, error) {
	gk := gvk.GroupKind()
	if k, ok := s.known[gk]; ok {
		return k, nil
	}
	if s.opts.Mapper != nil {
		m, err := s.opts.Mapper.RESTMapping(gk, gvk.Version)
		switch {
		case err == nil:
			return Kind{Resource: m.Resource.Resource, Cluster: m.Scope.Name() == meta.RESTScopeNameRoot}, nil
		case !meta.IsNoMatchError(err):
			return Kind{}, fmt.Errorf("map %s to a resource: %w", gvk, err)
		}
	}
	if k, ok := builtin[gk]; ok {
		return k, nil
	}
	if hint == "" {
		hint = "the options that list kinds' scopes or give a RESTMapper"
	}
	return Kind{}, fmt.Errorf("%s: %w: not a Kubernetes kind, no CustomResourceDefinition among the objects defines it and no option names it: give its scope with %s", name(gk), ErrUnknownKind, hint)
}

// ClusterScoped reports whether gvk's kind is cluster-scoped; see [Scopes.Lookup].
func (s *Scopes) ClusterScoped(gvk schema.GroupVersionKind, hint string) (bool, error) {
	k, err := s.Lookup(gvk, hint)
	return k.Cluster, err
}

// Builtin returns a copy of Kubernetes' kinds, as the API server serves them with all
// of its APIs on.
func Builtin() map[schema.GroupKind]Kind {
	out := make(map[schema.GroupKind]Kind, len(builtin))
	for gk, k := range builtin {
		out[gk] = k
	}
	return out
}

func name(gk schema.GroupKind) string {
	if gk.Group == "" {
		return gk.Kind
	}
	return gk.Group + "/" + gk.Kind
}

func guess(gk schema.GroupKind) string {
	gvr, _ := meta.UnsafeGuessKindToResource(gk.WithVersion(""))
	return gvr.Resource
}
