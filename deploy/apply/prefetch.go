package apply

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/shipkit/shipkit/deploy"
)

// prefetchMin is how many objects of one resource in one namespace make one list
// cheaper than a get of each.
const prefetchMin = 8

// prefetchPage is the page size of the lists.
const prefetchPage = 500

// prefetch reads, with one paginated list per resource and namespace, the live
// state of the objects of a stage that share a resource and namespace with at least
// prefetchMin others. An object in the map is known: its value is the live object,
// or nil when it does not exist. A list that fails (a caller allowed to get but not
// to list) leaves its objects unknown, for applyOnce to get one by one.
func (m *Manager) prefetch(ctx context.Context, stage []*object) map[deploy.ObjectRef]*unstructured.Unstructured {
	type group struct {
		gvr schema.GroupVersionResource
		ns  string
	}
	groups := map[group][]*object{}
	var order []group
	for _, o := range stage {
		if o.mapping == nil {
			continue
		}
		g := group{o.mapping.Resource, o.obj.GetNamespace()}
		if groups[g] == nil {
			order = append(order, g)
		}
		groups[g] = append(groups[g], o)
	}
	live := map[deploy.ObjectRef]*unstructured.Unstructured{}
	for _, g := range order {
		objs := groups[g]
		if len(objs) < prefetchMin {
			continue
		}
		byName, err := m.list(ctx, g.gvr, g.ns)
		if err != nil {
			m.log.DebugContext(ctx, "list failed, getting objects one by one", "resource", g.gvr.String(), "namespace", g.ns, "err", err)
			continue
		}
		for _, o := range objs {
			live[o.ref] = byName[o.obj.GetName()]
		}
	}
	return live
}

// list returns the objects of one resource in one namespace by name.
func (m *Manager) list(ctx context.Context, gvr schema.GroupVersionResource, ns string) (map[string]*unstructured.Unstructured, error) {
	out := map[string]*unstructured.Unstructured{}
	opts := metav1.ListOptions{Limit: prefetchPage}
	for {
		var page *unstructured.UnstructuredList
		err := retryTransient(ctx, func() error {
			var err error
			if ns == "" {
				page, err = m.client.Resource(gvr).List(ctx, opts)
			} else {
				page, err = m.client.Resource(gvr).Namespace(ns).List(ctx, opts)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		for i := range page.Items {
			out[page.Items[i].GetName()] = &page.Items[i]
		}
		if opts.Continue = page.GetContinue(); opts.Continue == "" {
			return out, nil
		}
	}
}
