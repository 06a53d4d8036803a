package apply

import (
	"context"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
)

var selfSubjectAccessReviews = schema.GroupVersionResource{Group: "authorization.k8s.io", Version: "v1", Resource: "selfsubjectaccessreviews"}

// Permission is one verb on one resource in one namespace ("" for cluster-scoped
// resources).
type Permission struct {
	Verb      string
	Group     string
	Resource  string
	Namespace string
}

// String reads like "create deployments.apps in shop" (no namespace for cluster scope).
func (p Permission) String() string {
	r := p.Resource
	if p.Group != "" {
		r += "." + p.Group
	}
	if p.Namespace != "" {
		return fmt.Sprintf("%s %s in %s", p.Verb, r, p.Namespace)
	}
	return fmt.Sprintf("%s %s", p.Verb, r)
}

// ForbiddenError lists the permissions the caller lacks.
type ForbiddenError struct {
	Missing []Permission
}

// Error lists every permission the caller lacks.
func (e *ForbiddenError) Error() string {
	parts := make([]string, len(e.Missing))
	for i, p := range e.Missing {
		parts[i] = p.String()
	}
	return "apply: not allowed to " + strings.Join(parts, "; ")
}

// Preflight asks the API server, with SelfSubjectAccessReviews, whether the caller
// may do everything Apply would do with objs (get, create and patch each object's
// resource in its namespace; with an ApplySet, the same on its parent ConfigMap and,
// with Prune, list and delete) and returns a [ForbiddenError] listing every missing
// permission. It changes nothing. Kinds of CRDs of the same set are checked too.
func (m *Manager) Preflight(ctx context.Context, objs []*unstructured.Unstructured) error {
	prepared, err := m.prepare(objs)
	if err != nil {
		return err
	}
	verbs := []string{"get", "create", "patch"}
	if m.opts.Prune {
		verbs = append(verbs, "list", "delete")
	}
	want := sets.New[Permission]()
	for _, o := range prepared {
		gr := schema.GroupResource{Group: o.gvk.Group, Resource: o.plural}
		for _, v := range verbs {
			want.Insert(Permission{Verb: v, Group: gr.Group, Resource: gr.Resource, Namespace: o.obj.GetNamespace()})
		}
	}
	if s := m.opts.ApplySet; s != nil {
		for _, v := range []string{"get", "create", "patch"} {
			want.Insert(Permission{Verb: v, Resource: "configmaps", Namespace: s.Namespace})
			if m.opts.Rollback {
				want.Insert(Permission{Verb: v, Resource: "secrets", Namespace: s.Namespace})
			}
		}
	}
	perms := want.UnsortedList()
	sort.Slice(perms, func(i, j int) bool { return perms[i].String() < perms[j].String() })
	allowed := make([]bool, len(perms))
	errs := make([]error, len(perms))
	m.forEach(ctx, len(perms), func(ctx context.Context, i int) {
		allowed[i], errs[i] = m.allowed(ctx, perms[i])
	})
	denied := &ForbiddenError{}
	for i, p := range perms {
		if errs[i] != nil {
			return fmt.Errorf("apply: preflight %s: %w", p, errs[i])
		}
		if !allowed[i] {
			denied.Missing = append(denied.Missing, p)
		}
	}
	if len(denied.Missing) > 0 {
		return denied
	}
	return nil
}

func (m *Manager) allowed(ctx context.Context, p Permission) (bool, error) {
	review := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "authorization.k8s.io/v1",
		"kind":       "SelfSubjectAccessReview",
		"spec": map[string]any{"resourceAttributes": map[string]any{
			"verb": p.Verb, "group": p.Group, "resource": p.Resource, "namespace": p.Namespace,
		}},
	}}
	var got *unstructured.Unstructured
	err := retryTransient(ctx, func() error {
		var err error
		got, err = m.client.Resource(selfSubjectAccessReviews).Create(ctx, review, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return false, err
	}
	ok, _, _ := unstructured.NestedBool(got.Object, "status", "allowed")
	return ok, nil
}
