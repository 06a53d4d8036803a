package apply_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/render"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// clusterCRD defines a cluster-scoped kind whose plural is irregular (octopi, not
// the guessed octopuses), and a custom resource of it that names a namespace.
const clusterCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: octopi.GROUP
spec:
  group: GROUP
  scope: Cluster
  names: {plural: octopi, singular: octopus, kind: Octopus, listKind: OctopusList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
---
apiVersion: GROUP/v1
kind: Octopus
metadata: {name: paul, namespace: NS}
spec: {arms: 8}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
`

// TestClusterScopedCRDInSet applies a cluster-scoped CRD with a custom resource of
// it in the same set: before the CRD exists, preflight asks for the CRD's plural
// without a namespace, plan counts it as created; apply creates it without the
// namespace it was given; a second apply changes nothing.
func TestClusterScopedCRDInSet(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	group := ns + ".shipkit.test"
	objs, err := render.Parse("octopus.yaml", []byte(strings.NewReplacer("GROUP", group, "NS", ns).Replace(clusterCRD)))
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = dyn.Resource(crdResource).Delete(t.Context(), "octopi."+group, metav1.DeleteOptions{})
	})

	cfg := c.RESTConfig()
	cfg.Impersonate.UserName = "nobody"
	nobody, err := apply.New(cfg, apply.Options{Namespace: ns})
	require.NoError(t, err)
	var forbidden *apply.ForbiddenError
	require.ErrorAs(t, nobody.Preflight(t.Context(), objs), &forbidden)
	assert.Contains(t, forbidden.Missing, apply.Permission{Verb: "create", Group: group, Resource: "octopi"})
	assert.Contains(t, forbidden.Missing, apply.Permission{Verb: "create", Resource: "configmaps", Namespace: ns})

	m, err := apply.New(c.RESTConfig(), apply.Options{Namespace: ns, Wait: time.Minute, Preflight: true})
	require.NoError(t, err)
	plan, err := m.Plan(t.Context(), objs)
	require.NoError(t, err)
	assert.Equal(t, 3, plan.Count(deploy.Created), "%v", plan)

	cs, err := m.Apply(t.Context(), objs)
	require.NoError(t, err)
	assert.Equal(t, 3, cs.Count(deploy.Created), "%v", cs)
	assert.Contains(t, cs.Changes, deploy.Change{Object: deploy.ObjectRef{Group: group, Kind: "Octopus", Name: "paul"}, Action: deploy.Created})
	got, err := dyn.Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: "octopi"}).Get(t.Context(), "paul", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Empty(t, got.GetNamespace())

	cs, err = m.Apply(t.Context(), objs)
	require.NoError(t, err)
	assert.False(t, cs.Changed(), "%v", cs)
}

// roleBindingCRD claims rbac.authorization.k8s.io's RoleBinding as a cluster-scoped
// custom kind; the API server keeps serving its own namespaced RoleBinding.
const roleBindingCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: rolebindings.rbac.authorization.k8s.io
  annotations: {api-approved.kubernetes.io: "https://example.invalid/1"}
spec:
  group: rbac.authorization.k8s.io
  scope: Cluster
  names: {plural: rolebindings, singular: rolebinding, kind: RoleBinding, listKind: RoleBindingList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
`

// TestCRDContradictingKubernetesRefused: a CRD in the set that redefines a kind
// Kubernetes serves built in, or a CRD without a scope, is refused by Apply, Plan
// and Preflight with an error naming the CRD, before anything is written.
func TestCRDContradictingKubernetesRefused(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	m, err := apply.New(c.RESTConfig(), apply.Options{Namespace: ns})
	require.NoError(t, err)
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n"
	for _, tc := range []struct {
		name, yaml, crd string
		want            []string
	}{
		{"built-in kind", cm + roleBindingCRD + "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: rb}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\n",
			"rolebindings.rbac.authorization.k8s.io",
			[]string{"CustomResourceDefinition rolebindings.rbac.authorization.k8s.io defines rbac.authorization.k8s.io/RoleBinding", `group "rbac.authorization.k8s.io", which Kubernetes serves built in`}},
		{"no scope", cm + strings.Replace(strings.ReplaceAll(gadgetCRD, "GROUP", ns+".shipkit.test"), "  scope: Namespaced\n", "", 1),
			"gadgets." + ns + ".shipkit.test",
			[]string{`CustomResourceDefinition "gadgets.` + ns + `.shipkit.test": spec.scope: missing`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := render.Parse("bad.yaml", []byte(tc.yaml))
			require.NoError(t, err)
			cs, err := m.Apply(t.Context(), objs)
			require.Error(t, err)
			assert.Nil(t, cs)
			for _, w := range tc.want {
				assert.ErrorContains(t, err, w)
			}
			t.Log(err)
			_, err = m.Plan(t.Context(), objs)
			assert.ErrorContains(t, err, tc.want[0])
			assert.ErrorContains(t, m.Preflight(t.Context(), objs), tc.want[0])

			_, err = c.Clientset().CoreV1().ConfigMaps(ns).Get(t.Context(), "a", metav1.GetOptions{})
			assert.True(t, apierrors.IsNotFound(err), "ConfigMap not applied: %v", err)
			_, err = dyn.Resource(crdResource).Get(t.Context(), tc.crd, metav1.GetOptions{})
			assert.True(t, apierrors.IsNotFound(err), "CRD not applied: %v", err)
		})
	}
}
