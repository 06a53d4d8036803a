package vap_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/shipkit/shipkit/scan/policy/vap"
)

// noAdminPolicy denies namespaced RoleBindings to cluster-admin.
const noAdminPolicy = `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: no-admin}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [rbac.authorization.k8s.io], apiVersions: [v1], operations: [CREATE], resources: [rolebindings], scope: Namespaced}
  validations:
  - expression: "object.roleRef.name != 'cluster-admin'"
    messageExpression: "'cluster-admin in namespace \"' + request.namespace + '\"'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: no-admin}
spec:
  policyName: no-admin
  validationActions: [Deny]
`

const adminBinding = `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: pwn, namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: default, namespace: kube-system}]
`

const shadowCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: rolebindings.rbac.authorization.k8s.io}
spec:
  group: rbac.authorization.k8s.io
  scope: Cluster
  names: {kind: RoleBinding, plural: rolebindings}
`

// A CRD among the objects redefining RoleBinding as cluster-scoped cannot make a
// namespaced RoleBinding escape a scope: Namespaced rule: the API server keeps its
// own RoleBinding, so Eval errors naming the CRD and never allows it.
func TestCRDShadowingBuiltinKind(t *testing.T) {
	ps, err := vap.New(parse(t, noAdminPolicy))
	require.NoError(t, err)
	res, err := ps.Eval(t.Context(), parse(t, adminBinding))
	require.NoError(t, err)
	require.Len(t, res.Findings, 1)
	assert.Contains(t, res.Findings[0].String(), `cluster-admin in namespace "kube-system"`)

	for _, objs := range []string{shadowCRD + "---\n" + adminBinding, adminBinding + "---\n" + shadowCRD} {
		res, err = ps.Eval(t.Context(), parse(t, objs))
		require.Error(t, err)
		assert.Nil(t, res)
		assert.ErrorContains(t, err, "CustomResourceDefinition rolebindings.rbac.authorization.k8s.io")
	}

	// Listing RoleBinding as cluster-scoped contradicts Kubernetes too.
	ps, err = vap.New(parse(t, noAdminPolicy), vap.WithClusterScopedKinds(schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}))
	require.NoError(t, err)
	_, err = ps.Eval(t.Context(), parse(t, adminBinding))
	assert.ErrorContains(t, err, "rbac.authorization.k8s.io/RoleBinding is Kubernetes' own kind")
}

// A listed kind with an irregular plural is matched by resourceRules on the
// resource given with WithResource, not the guess.
func TestWithResource(t *testing.T) {
	const policy = `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: octo}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [example.com], apiVersions: [v1], operations: [CREATE], resources: [octopi], scope: Cluster}
  validations:
  - expression: "false"
    message: "no octopi"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: octo}
spec:
  policyName: octo
  validationActions: [Deny]
`
	octopus := schema.GroupKind{Group: "example.com", Kind: "Octopus"}
	objs := parse(t, "apiVersion: example.com/v1\nkind: Octopus\nmetadata: {name: paul}\n")

	ps, err := vap.New(parse(t, policy), vap.WithClusterScopedKinds(octopus))
	require.NoError(t, err)
	res, err := ps.Eval(t.Context(), objs)
	require.NoError(t, err)
	assert.Empty(t, res.Findings, "the guess octopuses misses the rule")

	ps, err = vap.New(parse(t, policy), vap.WithClusterScopedKinds(octopus), vap.WithResource(octopus, "octopi"))
	require.NoError(t, err)
	res, err = ps.Eval(t.Context(), objs)
	require.NoError(t, err)
	require.Len(t, res.Findings, 1)
	assert.Contains(t, res.Findings[0].String(), "no octopi")

	_, err = vap.New(parse(t, policy), vap.WithResource(octopus, "Octo Pi"))
	assert.ErrorContains(t, err, "WithResource")
}
