package apply

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/observe"
)

// The labels and annotations of an ApplySet (KEP-3659), as kubectl writes them.
const (
	ApplySetPartOfLabel          = "applyset.kubernetes.io/part-of"
	ApplySetIDLabel              = "applyset.kubernetes.io/id"
	ApplySetToolingAnnotation    = "applyset.kubernetes.io/tooling"
	ApplySetGroupKindsAnnotation = "applyset.kubernetes.io/contains-group-kinds"
	ApplySetNamespacesAnnotation = "applyset.kubernetes.io/additional-namespaces"
)

// Tooling is the value of the ApplySet tooling annotation this package writes. An
// ApplySet whose parent another tool wrote is refused.
const Tooling = "shipkit/v1"

var configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// ApplySet is the inventory of a set of objects, kept as a Kubernetes ApplySet
// (KEP-3659, the mechanism of kubectl apply --prune --applyset): a parent ConfigMap
// named Name in Namespace records the kinds and namespaces of the set, and every
// member carries the label applyset.kubernetes.io/part-of=<ID>. Prune deletes only
// objects that carry this label and are not in the set, so nothing outside the set
// is ever touched.
type ApplySet struct {
	Name      string
	Namespace string
}

func (s *ApplySet) validate() error {
	if s.Name == "" || s.Namespace == "" {
		return errors.New("apply: an ApplySet needs a Name and a Namespace for its parent ConfigMap")
	}
	return nil
}

// ID returns the ApplySet's id, derived from its parent as KEP-3659 specifies, so
// kubectl sees the same set.
func (s *ApplySet) ID() string {
	sum := sha256.Sum256([]byte(strings.Join([]string{s.Name, s.Namespace, "ConfigMap", ""}, ".")))
	return "applyset-" + base64.RawURLEncoding.EncodeToString(sum[:]) + "-v1"
}

func (s *ApplySet) ref() deploy.ObjectRef {
	return deploy.ObjectRef{Kind: "ConfigMap", Namespace: s.Namespace, Name: s.Name}
}

// inventory is an ApplySet's state during one apply or plan.
type inventory struct {
	set        *ApplySet
	id         string
	kinds      map[schema.GroupKind]bool // recorded by previous applies
	namespaces map[string]bool           // recorded, besides the parent's
	written    bool
	// good is the last good revision (base64 of gzipped JSON), goodRevision its
	// name, kept what the revision Secret holds once its seal verified; all empty
	// without Options.Rollback.
	good, goodRevision, kept string
	// revErr is why the revision read from the Secret is not trusted, if it is not.
	revErr error
}

// openInventory reads the parent, refuses one another tool owns, and labels every
// object of the set as a member.
func (m *Manager) openInventory(ctx context.Context, objs []*object) (*inventory, error) {
	set := m.opts.ApplySet
	inv := &inventory{set: set, id: set.ID(), kinds: map[schema.GroupKind]bool{}, namespaces: map[string]bool{}}
	var parent *unstructured.Unstructured
	err := retryTransient(ctx, func() error {
		var err error
		parent, err = m.client.Resource(configMaps).Namespace(set.Namespace).Get(ctx, set.Name, metav1.GetOptions{})
		return err
	})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, &ObjectError{Object: set.ref(), Op: "get ApplySet parent", Err: err}
	default:
		if id := parent.GetLabels()[ApplySetIDLabel]; id != inv.id {
			return nil, &ObjectError{Object: set.ref(), Op: "open ApplySet", Err: fmt.Errorf("not the parent of ApplySet %s (its id label is %q)", inv.id, id)}
		}
		if tool := parent.GetAnnotations()[ApplySetToolingAnnotation]; !strings.HasPrefix(tool, "shipkit/") {
			return nil, &ObjectError{Object: set.ref(), Op: "open ApplySet", Err: fmt.Errorf("ApplySet is managed by %q, not shipkit", tool)}
		}
		for _, gk := range splitList(parent.GetAnnotations()[ApplySetGroupKindsAnnotation]) {
			inv.kinds[schema.ParseGroupKind(gk)] = true
		}
		for _, ns := range splitList(parent.GetAnnotations()[ApplySetNamespacesAnnotation]) {
			inv.namespaces[ns] = true
		}
	}
	for _, o := range objs {
		labels := o.obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[ApplySetPartOfLabel] = inv.id
		o.obj.SetLabels(labels)
	}
	return inv, nil
}

// writeParent applies the parent with the kinds and namespaces of objs, plus the
// recorded ones when union is set (before members are applied, so a crash leaves a
// superset and a later prune still finds every member).
func (m *Manager) writeParent(ctx context.Context, inv *inventory, objs []*object, union bool) error {
	kinds, namespaces := map[schema.GroupKind]bool{}, map[string]bool{}
	if union {
		kinds, namespaces = clone(inv.kinds), clone(inv.namespaces)
	}
	for _, o := range objs {
		kinds[o.gvk.GroupKind()] = true
		if !o.cluster && o.obj.GetNamespace() != inv.set.Namespace {
			namespaces[o.obj.GetNamespace()] = true
		}
	}
	var gks []string
	for gk := range kinds {
		gks = append(gks, gk.Kind+strings.TrimSuffix("."+gk.Group, "."))
	}
	parent := &unstructured.Unstructured{}
	parent.SetAPIVersion("v1")
	parent.SetKind("ConfigMap")
	parent.SetName(inv.set.Name)
	parent.SetNamespace(inv.set.Namespace)
	parent.SetLabels(map[string]string{ApplySetIDLabel: inv.id})
	annotations := map[string]string{
		ApplySetToolingAnnotation:    Tooling,
		ApplySetGroupKindsAnnotation: joinList(gks),
		ApplySetNamespacesAnnotation: joinList(keys(namespaces)),
	}
	parent.SetAnnotations(annotations)
	err := retryTransient(ctx, func() error {
		_, err := m.client.Resource(configMaps).Namespace(inv.set.Namespace).Apply(ctx, inv.set.Name, parent,
			metav1.ApplyOptions{FieldManager: m.opts.FieldManager, Force: true})
		return err
	})
	if err != nil {
		return &ObjectError{Object: inv.set.ref(), Op: "write ApplySet parent", Err: err}
	}
	inv.kinds, inv.namespaces, inv.written = kinds, namespaces, true
	return nil
}

// finishInventory prunes (when asked) and then records exactly the current set.
func (m *Manager) finishInventory(ctx context.Context, inv *inventory, objs []*object, prune bool) ([]deploy.Change, error) {
	if !prune {
		return nil, m.writeParent(ctx, inv, objs, true)
	}
	st := m.step("prune", 0)
	pruned, err := m.prune(ctx, inv, objs, false, st)
	if err == nil {
		err = m.writeParent(ctx, inv, objs, false)
	}
	st.End(err, fmt.Sprintf("%d pruned", len(pruned)))
	return pruned, err
}

// prune deletes (or, in a dry run, lists) the members of the ApplySet that are not
// in objs: namespaced objects first, then cluster-scoped ones, CRDs last.
func (m *Manager) prune(ctx context.Context, inv *inventory, objs []*object, dryRun bool, st *observe.Step) ([]deploy.Change, error) {
	keep := map[deploy.ObjectRef]bool{}
	kinds := clone(inv.kinds)
	namespaces := clone(inv.namespaces)
	namespaces[inv.set.Namespace] = true
	usedNamespaces := map[string]bool{}
	for _, o := range objs {
		keep[o.ref] = true
		kinds[o.gvk.GroupKind()] = true
		if !o.cluster {
			namespaces[o.obj.GetNamespace()] = true
			usedNamespaces[o.obj.GetNamespace()] = true
		}
	}
	selector := metav1.ListOptions{LabelSelector: ApplySetPartOfLabel + "=" + inv.id}
	var candidates []*unstructured.Unstructured
	var mappings []*meta.RESTMapping
	for _, gk := range sortedKinds(kinds) {
		mapping, err := m.mapper.RESTMapping(gk)
		if meta.IsNoMatchError(err) {
			continue // the kind is gone, and its objects with it
		}
		if err != nil {
			return nil, fmt.Errorf("prune: map %s: %w", gk, err)
		}
		scopes := []string{""}
		if mapping.Scope.Name() != meta.RESTScopeNameRoot {
			scopes = keys(namespaces)
		}
		for _, ns := range scopes {
			var list *unstructured.UnstructuredList
			err := retryTransient(ctx, func() error {
				var err error
				if ns == "" {
					list, err = m.client.Resource(mapping.Resource).List(ctx, selector)
				} else {
					list, err = m.client.Resource(mapping.Resource).Namespace(ns).List(ctx, selector)
				}
				return err
			})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("prune: list %s in %q: %w", gk, ns, err)
			}
			for i := range list.Items {
				item := &list.Items[i]
				if keep[deploy.RefOf(item)] || item.GetDeletionTimestamp() != nil {
					continue
				}
				if gk == (schema.GroupKind{Kind: "Namespace"}) && usedNamespaces[item.GetName()] {
					m.log.WarnContext(ctx, "not pruning a namespace that holds objects of the set", "namespace", item.GetName())
					continue
				}
				candidates = append(candidates, item)
				mappings = append(mappings, mapping)
			}
		}
	}
	order := make([]int, len(candidates))
	for i := range order {
		order[i] = i
	}
	rank := func(i int) int {
		switch {
		case isCRD(candidates[i]):
			return 2
		case mappings[i].Scope.Name() == meta.RESTScopeNameRoot:
			return 1
		}
		return 0
	}
	sort.SliceStable(order, func(a, b int) bool { return rank(order[a]) < rank(order[b]) })
	var changes []deploy.Change
	for _, i := range order {
		item, mapping := candidates[i], mappings[i]
		ref := deploy.RefOf(item)
		if !dryRun {
			uid := item.GetUID()
			policy := metav1.DeletePropagationBackground
			opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &policy}
			err := retryTransient(ctx, func() error {
				r := m.client.Resource(mapping.Resource)
				if item.GetNamespace() == "" {
					return r.Delete(ctx, item.GetName(), opts)
				}
				return r.Namespace(item.GetNamespace()).Delete(ctx, item.GetName(), opts)
			})
			if err != nil && !apierrors.IsNotFound(err) {
				return changes, &ObjectError{Object: ref, Op: "prune", Err: err}
			}
			st.Progress(ref.String() + " " + string(deploy.Pruned))
		}
		changes = append(changes, deploy.Change{Object: ref, Action: deploy.Pruned})
	}
	return changes, nil
}

// splitList splits an ApplySet annotation's comma-separated list, ignoring blanks.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
}

func joinList(items []string) string {
	slices.Sort(items)
	return strings.Join(items, ",")
}

func keys[K comparable](m map[K]bool) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func clone[K comparable](m map[K]bool) map[K]bool {
	out := make(map[K]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedKinds(m map[schema.GroupKind]bool) []schema.GroupKind {
	out := keys(m)
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
