// Package kindscope is the one owner of "is this kind cluster-scoped": the offline
// policy engines (scan/policy/gatekeeper, scan/policy/vap) ask it where an object
// without metadata.namespace will live.
//
// A kind is known from, in this order of precedence:
//
//  1. Kubernetes' own kinds: the API server serves them whatever else is installed.
//  2. The caller's RESTMapper (a cluster's discovery): what the cluster serves.
//  3. A CustomResourceDefinition among the objects in view: what will be installed.
//  4. The kinds the caller listed (Options.Cluster, Options.Namespaced).
//
// A source never silently overrides a higher one: a CRD in view for a group
// Kubernetes serves built in (rbac.authorization.k8s.io, apps, ...), a malformed CRD,
// a listed kind that is built in with the other scope, a kind listed as both
// namespaced and cluster-scoped, or a CRD or listed kind that the mapper answers
// differently is an error naming it. Otherwise an objects' CRD defining
// RoleBinding as cluster-scoped would have a namespaced RoleBinding judged without
// its namespace while the API server creates it in the namespace.
//
// A kind known from none of them is an error wrapping [ErrUnknownKind], never
// assumed namespaced: a cluster-scoped custom resource (cert-manager's ClusterIssuer)
// copied into a namespace would be judged as no admission controller sees it.
package kindscope

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/shipkit/shipkit/internal/option"
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
	// Resources gives the resource of listed kinds (Cluster, Namespaced); a listed
	// kind not in it has the guessed lower-case plural of its kind (Policy:
	// policies), which is wrong for an irregular plural.
	Resources map[schema.GroupKind]string
}

// source is a kind known from a CRD in view or a caller's list, and what named it.
type source struct {
	Kind
	from    string // the CRD or option that gave it, for errors
	guessed bool   // Resource is a guess, not stated
}

// Scopes answers for the kinds of one batch of objects.
type Scopes struct {
	mapper meta.RESTMapper
	crds   map[schema.GroupKind]source // CRDs in view
	listed map[schema.GroupKind]source // the caller's lists
}

var crdKind = schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}

// New returns the scopes of the kinds known from opts and the CustomResourceDefinitions
// among objs. The error names a CRD or listed kind that is malformed or contradicts
// Kubernetes' own kinds or another source (see the package documentation).
func New(opts Options, objs ...[]*unstructured.Unstructured) (*Scopes, error) {
	s := &Scopes{mapper: opts.Mapper, crds: map[schema.GroupKind]source{}, listed: map[schema.GroupKind]source{}}
	if err := s.list(opts); err != nil {
		return nil, err
	}
	groups := builtinGroups()
	for _, list := range objs {
		for _, o := range list {
			if o.GroupVersionKind().GroupKind() != crdKind {
				continue
			}
			gk, k, err := fromCRD(o)
			if err != nil {
				return nil, err
			}
			from := "CustomResourceDefinition " + o.GetName()
			if groups[gk.Group] {
				return nil, fmt.Errorf("%s defines %s in group %q, which Kubernetes serves built in: the API server keeps its own kinds there, so the CRD cannot be what %s objects are", from, name(gk), gk.Group, name(gk))
			}
			if prev, ok := s.crds[gk]; ok && prev.Kind != k {
				return nil, fmt.Errorf("%s defines %s as %s, %s as %s", from, name(gk), describe(k), prev.from, describe(prev.Kind))
			}
			if l, ok := s.listed[gk]; ok && l.Cluster != k.Cluster {
				return nil, fmt.Errorf("%s defines %s as %s, %s says %s", from, name(gk), scopeName(k.Cluster), l.from, scopeName(l.Cluster))
			}
			s.crds[gk] = source{Kind: k, from: from}
		}
	}
	return s, nil
}

// list records the caller's listed kinds, checking them against each other and
// Kubernetes' own kinds.
func (s *Scopes) list(opts Options) error {
	add := func(gk schema.GroupKind, cluster bool, opt string) error {
		if prev, ok := s.listed[gk]; ok && prev.Cluster != cluster {
			return fmt.Errorf("%s is listed as both namespaced and cluster-scoped", name(gk))
		}
		k := Kind{Resource: opts.Resources[gk], Cluster: cluster}
		guessed := k.Resource == ""
		if guessed {
			k.Resource = guess(gk)
		}
		if b, ok := builtin[gk]; ok && (b.Cluster != cluster || !guessed && b.Resource != k.Resource) {
			return fmt.Errorf("%s: %s is Kubernetes' own kind, %s", opt, name(gk), describe(b))
		}
		s.listed[gk] = source{Kind: k, from: opt + " " + name(gk), guessed: guessed}
		return nil
	}
	for _, gk := range opts.Namespaced {
		if err := add(gk, false, "the namespaced kind"); err != nil {
			return err
		}
	}
	for _, gk := range opts.Cluster {
		if err := add(gk, true, "the cluster-scoped kind"); err != nil {
			return err
		}
	}
	for gk, r := range opts.Resources {
		if _, ok := s.listed[gk]; !ok {
			return fmt.Errorf("resource %q given for %s, which is not listed as namespaced or cluster-scoped", r, name(gk))
		}
		if r == "" {
			return fmt.Errorf("empty resource given for %s", name(gk))
		}
	}
	return nil
}

// fromCRD reads the kind a CustomResourceDefinition defines; a field missing or not a
// string, or a scope other than Cluster or Namespaced, is an error naming the CRD.
// A v1beta1 CRD may leave the scope out: the API server (up to 1.21, the last to
// serve v1beta1) defaults it to Namespaced, and so does this.
func fromCRD(o *unstructured.Unstructured) (schema.GroupKind, Kind, error) {
	field := func(path ...string) (string, error) {
		v, ok, err := unstructured.NestedString(o.Object, path...)
		switch {
		case err != nil:
			return "", err
		case !ok || v == "":
			return "", errors.New("missing")
		}
		return v, nil
	}
	var vals [4]string
	for i, path := range [][]string{{"spec", "group"}, {"spec", "names", "kind"}, {"spec", "names", "plural"}, {"spec", "scope"}} {
		v, err := field(path...)
		if err != nil && path[1] == "scope" && o.GetAPIVersion() == "apiextensions.k8s.io/v1beta1" {
			v, err = "Namespaced", nil
		}
		if err != nil {
			return schema.GroupKind{}, Kind{}, fmt.Errorf("CustomResourceDefinition %q: %s: %w", o.GetName(), strings.Join(path, "."), err)
		}
		vals[i] = v
	}
	gk := schema.GroupKind{Group: vals[0], Kind: vals[1]}
	if vals[3] != "Cluster" && vals[3] != "Namespaced" {
		return gk, Kind{}, fmt.Errorf("CustomResourceDefinition %q: spec.scope %q: neither Cluster nor Namespaced", o.GetName(), vals[3])
	}
	return gk, Kind{Resource: vals[2], Cluster: vals[3] == "Cluster"}, nil
}

// Lookup returns the resource and scope of gvk's kind, or an error wrapping
// [ErrUnknownKind] naming the kind and hint, the caller's options that would make
// it known. A CRD in view or listed kind that the mapper answers differently is an
// error naming it.
func (s *Scopes) Lookup(gvk schema.GroupVersionKind, hint string) (Kind, error) {
	gk := gvk.GroupKind()
	if k, ok := builtin[gk]; ok {
		return k, nil
	}
	crd, inView := s.crds[gk]
	listed, isListed := s.listed[gk]
	if s.mapper != nil {
		m, err := s.mapper.RESTMapping(gk, gvk.Version)
		switch {
		case err == nil:
			k := Kind{Resource: m.Resource.Resource, Cluster: m.Scope.Name() == meta.RESTScopeNameRoot}
			if inView && crd.Kind != k {
				return Kind{}, fmt.Errorf("%s defines %s as %s, the cluster's mapper as %s", crd.from, name(gk), describe(crd.Kind), describe(k))
			}
			if isListed && (listed.Cluster != k.Cluster || !listed.guessed && listed.Resource != k.Resource) {
				return Kind{}, fmt.Errorf("%s: the cluster's mapper has %s", listed.from, describe(k))
			}
			return k, nil
		case !meta.IsNoMatchError(err):
			return Kind{}, fmt.Errorf("map %s to a resource: %w", gvk, err)
		}
	}
	if inView {
		return crd.Kind, nil
	}
	if isListed {
		return listed.Kind, nil
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

func builtinGroups() map[string]bool {
	out := map[string]bool{}
	for gk := range builtin {
		out[gk.Group] = true
	}
	return out
}

func scopeName(cluster bool) string {
	if cluster {
		return "cluster-scoped"
	}
	return "namespaced"
}

func describe(k Kind) string {
	return fmt.Sprintf("%s with resource %q", scopeName(k.Cluster), k.Resource)
}

func guess(gk schema.GroupKind) string {
	gvr, _ := meta.UnsafeGuessKindToResource(gk.WithVersion(""))
	return gvr.Resource
}

// CheckKinds adds to errs, under the option's name opt, each kind of kinds that
// has no name, and returns kinds: the check behind the policy packages' options
// that list kinds (WithClusterScopedKinds, WithNamespacedKinds).
func CheckKinds(errs *option.List, opt string, kinds []schema.GroupKind) []schema.GroupKind {
	for _, gk := range kinds {
		if gk.Kind == "" {
			errs.Addf("%s: a kind without a name (group %q)", opt, gk.Group)
		}
	}
	return kinds
}
