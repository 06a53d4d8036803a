package kindscope_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/shipkit/shipkit/internal/kindscope"
)

// A custom kind whose CRD is installed on the cluster (not among the objects) is
// known from the cluster's discovery, cluster-scoped or namespaced as served.
func TestLookupWithDiscoveryMapper(t *testing.T) {
	c := cluster.Get(t)
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	const group = "kindscope.shipkit.test"
	for _, d := range [][3]string{{"ClusterGadget", "clustergadgets", "Cluster"}, {"Gadget", "gadgets", "Namespaced"}} {
		u := crd(group, d[0], d[1], d[2])
		require.NoError(t, unstructured.SetNestedSlice(u.Object, []any{map[string]any{
			"name": "v1", "served": true, "storage": true,
			"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
		}}, "spec", "versions"))
		_, err := crds.Create(t.Context(), u, metav1.CreateOptions{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = crds.Delete(t.Context(), u.GetName(), metav1.DeleteOptions{}) })
	}
	cluster, gadget := schema.GroupVersionKind{Group: group, Version: "v1", Kind: "ClusterGadget"}, schema.GroupVersionKind{Group: group, Version: "v1", Kind: "Gadget"}
	require.Eventually(t, func() bool {
		l, err := c.Clientset().Discovery().ServerResourcesForGroupVersion(group + "/v1")
		return err == nil && len(l.APIResources) == 2
	}, 30*time.Second, 100*time.Millisecond, "discovery serves the CRDs")

	m := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Clientset().Discovery()))
	s := mustNew(t, kindscope.Options{Mapper: m})
	k, err := s.Lookup(cluster, "")
	require.NoError(t, err)
	assert.Equal(t, kindscope.Kind{Resource: "clustergadgets", Cluster: true}, k)
	k, err = s.Lookup(gadget, "")
	require.NoError(t, err)
	assert.Equal(t, kindscope.Kind{Resource: "gadgets", Cluster: false}, k)
	k, err = s.Lookup(schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "IPAddress"}, "")
	require.NoError(t, err)
	assert.True(t, k.Cluster)

	_, err = s.Lookup(schema.GroupVersionKind{Group: group, Version: "v1", Kind: "Missing"}, "")
	require.ErrorIs(t, err, kindscope.ErrUnknownKind, "a kind the cluster does not serve")
	_, err = mustNew(t, kindscope.Options{}).Lookup(cluster, "")
	require.ErrorIs(t, err, kindscope.ErrUnknownKind, "offline, nothing tells its scope")
}
