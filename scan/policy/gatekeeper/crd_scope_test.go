package gatekeeper_test

import (
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/scan/policy/gatekeeper"
)

// noAdminPolicy denies namespaced RoleBindings to cluster-admin.
const noAdminPolicy = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8snoadmin}
spec:
  crd:
    spec:
      names: {kind: K8sNoAdmin}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8snoadmin
      violation[{"msg": msg}] {
        input.review.object.roleRef.name == "cluster-admin"
        msg := sprintf("cluster-admin in namespace %q", [object.get(input.review, "namespace", "")])
      }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sNoAdmin
metadata: {name: no-admin}
spec:
  match:
    scope: Namespaced
    kinds:
    - apiGroups: ["rbac.authorization.k8s.io"]
      kinds: ["RoleBinding"]
`

const adminBinding = `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: pwn, namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: default, namespace: kube-system}]
`

// A CRD among the objects redefining RoleBinding as cluster-scoped cannot make a
// namespaced RoleBinding escape a scope: Namespaced constraint: the API server keeps
// its own RoleBinding, so Eval errors naming the CRD and never allows it.
func TestCRDShadowingBuiltinKind(t *testing.T) {
	p, err := gatekeeper.LoadFS(t.Context(), fstest.MapFS{"p.yaml": {Data: []byte(noAdminPolicy)}})
	require.NoError(t, err)
	rb := obj(t, adminBinding)
	res, err := p.Eval(t.Context(), []*unstructured.Unstructured{rb})
	require.NoError(t, err)
	assert.Equal(t, []string{`RoleBinding.rbac.authorization.k8s.io/kube-system/pwn gatekeeper:K8sNoAdmin/no-admin deny: cluster-admin in namespace "kube-system"`}, messages(res))

	shadow := obj(t, `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: rolebindings.rbac.authorization.k8s.io}
spec:
  group: rbac.authorization.k8s.io
  scope: Cluster
  names: {kind: RoleBinding, plural: rolebindings}
`)
	for _, objs := range [][]*unstructured.Unstructured{{shadow, rb}, {rb, shadow}} {
		res, err = p.Eval(t.Context(), objs)
		require.Error(t, err)
		assert.Nil(t, res)
		assert.ErrorContains(t, err, "CustomResourceDefinition rolebindings.rbac.authorization.k8s.io")
	}
	p, err = gatekeeper.LoadFS(t.Context(), fstest.MapFS{"p.yaml": {Data: []byte(noAdminPolicy)}}, gatekeeper.WithInventory(shadow))
	require.NoError(t, err)
	_, err = p.Eval(t.Context(), []*unstructured.Unstructured{rb})
	assert.ErrorContains(t, err, "CustomResourceDefinition rolebindings.rbac.authorization.k8s.io", "a CRD in the inventory")
}
