package vap_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/shipkit/shipkit/scan/policy/vap"
)

// ownerPolicy requires an owner label on cluster-scoped cert-manager
// ClusterIssuers (scope: Cluster) and says which namespace the request had.
const ownerPolicy = `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: owner}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [cert-manager.io], apiVersions: [v1], operations: [CREATE], resources: [clusterissuers], scope: Cluster}
  validations:
  - expression: "has(object.metadata.labels) && 'owner' in object.metadata.labels"
    messageExpression: "'no owner (namespace \"' + (has(request.namespace) ? request.namespace : '') + '\")'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: owner}
spec:
  policyName: owner
  validationActions: [Deny]
`

// A cluster-scoped custom resource whose CRD is installed, not among the objects:
// judged cluster-scoped (scope: Cluster matches, no request namespace) when an
// option tells its scope; an error naming the kind and the options when nothing
// does, never copied into the default namespace.
func TestClusterScopedCustomKind(t *testing.T) {
	ci := parse(t, "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {name: le}\n")[0]
	inShop := ci.DeepCopy()
	inShop.SetNamespace("shop")
	gk := schema.GroupKind{Group: "cert-manager.io", Kind: "ClusterIssuer"}
	m := meta.NewDefaultRESTMapper(nil)
	m.Add(gk.WithVersion("v1"), meta.RESTScopeRoot)
	want := []string{`[vap:owner/owner] ClusterIssuer.cert-manager.io/le: Deny: clusterissuers.cert-manager.io "le" is forbidden: ValidatingAdmissionPolicy 'owner' with binding 'owner' denied request: no owner (namespace "")`}

	for name, opt := range map[string]vap.Option{"listed": vap.WithClusterScopedKinds(gk), "mapper": vap.WithRESTMapper(m)} {
		t.Run(name, func(t *testing.T) {
			ps, err := vap.New(parse(t, ownerPolicy), opt, vap.WithDefaultNamespace("shop"))
			require.NoError(t, err)
			for _, o := range []*unstructured.Unstructured{ci, inShop} {
				res, err := ps.Eval(t.Context(), []*unstructured.Unstructured{o})
				require.NoError(t, err)
				assert.Equal(t, want, strs(res), "namespace %q", o.GetNamespace())
			}
		})
	}

	crd := parse(t, `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: clusterissuers.cert-manager.io}
spec:
  group: cert-manager.io
  scope: Cluster
  names: {kind: ClusterIssuer, plural: clusterissuers}
`)[0]
	ps, err := vap.New(parse(t, ownerPolicy), vap.WithDefaultNamespace("shop"))
	require.NoError(t, err)
	res, err := ps.Eval(t.Context(), []*unstructured.Unstructured{crd, ci})
	require.NoError(t, err)
	assert.Equal(t, want, strs(res), "scope from the CRD among the objects")

	for _, opts := range [][]vap.Option{nil, {vap.WithDefaultNamespace("shop")}} {
		ps, err := vap.New(parse(t, ownerPolicy), opts...)
		require.NoError(t, err)
		_, err = ps.Eval(t.Context(), []*unstructured.Unstructured{ci})
		require.ErrorIs(t, err, vap.ErrUnknownKind)
		assert.ErrorContains(t, err, "cert-manager.io/ClusterIssuer")
		assert.ErrorContains(t, err, "WithClusterScopedKinds")
		assert.NotContains(t, err.Error(), "metadata.namespace")
	}
}

// Kubernetes' own kinds need no option, including those newer than the first list.
func TestBuiltinKindScopes(t *testing.T) {
	ps, err := vap.New(parse(t, ownerPolicy))
	require.NoError(t, err)
	_, err = ps.Eval(t.Context(), parse(t, `apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata: {name: extra}
---
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: gpu}
---
apiVersion: storage.k8s.io/v1
kind: VolumeAttributesClass
metadata: {name: fast}
`))
	require.NoError(t, err)
}

func strs(res *vap.Result) []string {
	out := make([]string, 0, len(res.Findings))
	for _, f := range res.Findings {
		out = append(out, f.String())
	}
	return out
}
