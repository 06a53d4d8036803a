package kindscope_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/shipkit/shipkit/internal/kindscope"
)

var roleBinding = schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"}

// A CRD among the objects never redefines a kind Kubernetes serves built in: the
// API server keeps its namespaced RoleBinding, so a CRD saying cluster-scoped is an
// error naming the CRD, as is any CRD in a built-in group.
func TestCRDInBuiltinGroup(t *testing.T) {
	for _, c := range []*unstructured.Unstructured{
		crd("rbac.authorization.k8s.io", "RoleBinding", "rolebindings", "Cluster"),
		crd("rbac.authorization.k8s.io", "RoleBinding", "rolebindings", "Namespaced"),
		crd("apps", "Gizmo", "gizmos", "Namespaced"),
		crd("networking.k8s.io", "Gizmo", "gizmos", "Cluster"),
	} {
		_, err := kindscope.New(kindscope.Options{}, []*unstructured.Unstructured{c})
		require.Error(t, err, c.GetName())
		assert.ErrorContains(t, err, "CustomResourceDefinition "+c.GetName())
		assert.ErrorContains(t, err, "built in")
	}
	// A group of its own under k8s.io (Gateway API) is not built in.
	s, err := kindscope.New(kindscope.Options{}, []*unstructured.Unstructured{crd("gateway.networking.k8s.io", "Gateway", "gateways", "Namespaced")})
	require.NoError(t, err)
	k, err := s.Lookup(schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "Gateway"}, "")
	require.NoError(t, err)
	assert.Equal(t, kindscope.Kind{Resource: "gateways"}, k)
}

// A malformed CRD is an error naming it, never read as the core group or namespaced.
func TestMalformedCRD(t *testing.T) {
	nonString := crd("x.example.com", "Pod", "pods", "Namespaced")
	nonString.Object["spec"].(map[string]any)["group"] = 42
	for want, c := range map[string]*unstructured.Unstructured{
		"spec.group":           crd("", "Pod", "pods", "Namespaced"),
		"spec.group:":          nonString,
		"spec.names.kind":      crd("x.example.com", "", "things", "Namespaced"),
		"spec.names.plural":    crd("x.example.com", "Thing", "", "Namespaced"),
		"spec.scope":           crd("x.example.com", "Thing", "things", ""),
		`spec.scope "cluster"`: crd("x.example.com", "Thing", "things", "cluster"),
	} {
		_, err := kindscope.New(kindscope.Options{}, []*unstructured.Unstructured{c})
		require.Error(t, err, want)
		assert.ErrorContains(t, err, "CustomResourceDefinition \""+c.GetName()+"\"")
		assert.ErrorContains(t, err, want)
	}
}

// The caller's lists: a kind in both is an error, as is a built-in kind with the
// other scope; the CRD in view and the lists must agree.
func TestListedConflicts(t *testing.T) {
	gadget := schema.GroupKind{Group: "x.example.com", Kind: "Gadget"}
	_, err := kindscope.New(kindscope.Options{Cluster: []schema.GroupKind{gadget}, Namespaced: []schema.GroupKind{gadget}})
	require.Error(t, err)
	assert.ErrorContains(t, err, "x.example.com/Gadget is listed as both")

	_, err = kindscope.New(kindscope.Options{Cluster: []schema.GroupKind{roleBinding.GroupKind()}})
	require.Error(t, err)
	assert.ErrorContains(t, err, "rbac.authorization.k8s.io/RoleBinding is Kubernetes' own kind, namespaced")
	_, err = kindscope.New(kindscope.Options{Namespaced: []schema.GroupKind{roleBinding.GroupKind()}})
	require.NoError(t, err, "agreeing with Kubernetes")

	_, err = kindscope.New(kindscope.Options{Namespaced: []schema.GroupKind{gadget}}, []*unstructured.Unstructured{crd("x.example.com", "Gadget", "gadgets", "Cluster")})
	require.Error(t, err)
	assert.ErrorContains(t, err, "CustomResourceDefinition gadgets.x.example.com")
}

// The mapper outranks a CRD in view and the lists; one that contradicts it is an
// error naming it.
func TestMapperOutranks(t *testing.T) {
	gvk := schema.GroupVersionKind{Group: "x.example.com", Version: "v1", Kind: "Gadget"}
	m := meta.NewDefaultRESTMapper(nil)
	m.Add(gvk, meta.RESTScopeNamespace)

	s := mustNew(t, kindscope.Options{Mapper: m}, []*unstructured.Unstructured{crd("x.example.com", "Gadget", "gadgets", "Cluster")})
	_, err := s.Lookup(gvk, "")
	require.Error(t, err)
	assert.ErrorContains(t, err, "CustomResourceDefinition gadgets.x.example.com defines x.example.com/Gadget as cluster-scoped")

	s = mustNew(t, kindscope.Options{Mapper: m, Cluster: []schema.GroupKind{gvk.GroupKind()}})
	_, err = s.Lookup(gvk, "")
	require.Error(t, err)
	assert.ErrorContains(t, err, "the cluster-scoped kind x.example.com/Gadget")

	s = mustNew(t, kindscope.Options{Mapper: m}, []*unstructured.Unstructured{crd("x.example.com", "Gadget", "gadgets", "Namespaced")})
	k, err := s.Lookup(gvk, "")
	require.NoError(t, err)
	assert.Equal(t, kindscope.Kind{Resource: "gadgets"}, k)
}

// A listed kind's resource is the guessed plural unless Resources gives it.
func TestListedResource(t *testing.T) {
	gvk := schema.GroupVersionKind{Group: "x.example.com", Version: "v1", Kind: "Octopus"}
	s := mustNew(t, kindscope.Options{Cluster: []schema.GroupKind{gvk.GroupKind()}})
	k, err := s.Lookup(gvk, "")
	require.NoError(t, err)
	assert.Equal(t, "octopuses", k.Resource, "the guess")

	s = mustNew(t, kindscope.Options{Cluster: []schema.GroupKind{gvk.GroupKind()}, Resources: map[schema.GroupKind]string{gvk.GroupKind(): "octopi"}})
	k, err = s.Lookup(gvk, "")
	require.NoError(t, err)
	assert.Equal(t, kindscope.Kind{Resource: "octopi", Cluster: true}, k)

	_, err = kindscope.New(kindscope.Options{Resources: map[schema.GroupKind]string{gvk.GroupKind(): "octopi"}})
	assert.ErrorContains(t, err, "not listed")
}

// A v1beta1 CRD may leave out its scope, which the API server then defaults to
// Namespaced; a v1 CRD may not.
func TestV1beta1CRDDefaultScope(t *testing.T) {
	c := crd("x.example.com", "Thing", "things", "")
	delete(c.Object["spec"].(map[string]any), "scope")
	c.SetAPIVersion("apiextensions.k8s.io/v1beta1")
	s, err := kindscope.New(kindscope.Options{}, []*unstructured.Unstructured{c})
	require.NoError(t, err)
	k, err := s.Lookup(schema.GroupVersionKind{Group: "x.example.com", Version: "v1", Kind: "Thing"}, "")
	require.NoError(t, err)
	assert.Equal(t, kindscope.Kind{Resource: "things"}, k)

	c.SetAPIVersion("apiextensions.k8s.io/v1")
	_, err = kindscope.New(kindscope.Options{}, []*unstructured.Unstructured{c})
	assert.ErrorContains(t, err, "spec.scope")
}
