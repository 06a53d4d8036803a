package gatekeeper_test

import (
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/shipkit/shipkit/scan/policy/gatekeeper"
)

// scopePolicies require an owner label on cert-manager's ClusterIssuers (a
// cluster-scoped custom kind) and Issuers (namespaced), and deny Issuers by a
// template whose Rego fails to evaluate.
const scopePolicies = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8sowner}
spec:
  crd:
    spec:
      names: {kind: K8sOwner}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sowner
      violation[{"msg": msg}] {
        not input.review.object.metadata.labels.owner
        msg := sprintf("no owner (namespace %q)", [object.get(input.review, "namespace", "")])
      }
---
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8sboom}
spec:
  crd:
    spec:
      names: {kind: K8sBoom}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sboom
      f(x) = 1 { true }
      f(x) = 2 { true }
      violation[{"msg": msg}] {
        f(1) == 3
        msg := "never"
      }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sOwner
metadata: {name: cluster-things}
spec:
  match:
    scope: Cluster
    kinds:
    - apiGroups: ["cert-manager.io"]
      kinds: ["ClusterIssuer"]
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sOwner
metadata: {name: shop-things}
spec:
  match:
    namespaces: ["shop"]
    kinds:
    - apiGroups: ["cert-manager.io"]
      kinds: ["ClusterIssuer"]
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sBoom
metadata: {name: boom}
spec:
  enforcementAction: deny
  match:
    kinds:
    - apiGroups: ["cert-manager.io"]
      kinds: ["Issuer"]
`

var clusterIssuer = schema.GroupKind{Group: "cert-manager.io", Kind: "ClusterIssuer"}

func loadScope(t *testing.T, opts ...gatekeeper.Option) *gatekeeper.Policies {
	t.Helper()
	p, err := gatekeeper.LoadFS(t.Context(), fstest.MapFS{"p.yaml": {Data: []byte(scopePolicies)}}, opts...)
	require.NoError(t, err)
	return p
}

func messages(res *gatekeeper.Result) []string {
	out := make([]string, 0, len(res.Findings))
	for _, f := range res.Findings {
		out = append(out, f.Object.String()+" "+f.RuleID()+" "+string(f.Action)+": "+f.Message)
	}
	return out
}

// A cluster-scoped custom resource whose CRD is installed, not among the objects:
// judged cluster-scoped (scope: Cluster matches, no namespace in the review) when an option tells its scope, an error naming the
// kind and the options when nothing does; never copied into the default namespace.
func TestClusterScopedCustomKind(t *testing.T) {
	ci := obj(t, "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {name: le}\n")
	want := []string{ // namespaces: [shop] cannot disqualify an object without one (Gatekeeper's matcher)
		`ClusterIssuer.cert-manager.io/le gatekeeper:K8sOwner/cluster-things deny: no owner (namespace "")`,
		`ClusterIssuer.cert-manager.io/le gatekeeper:K8sOwner/shop-things deny: no owner (namespace "")`,
	}

	for name, opt := range map[string]gatekeeper.Option{
		"listed": gatekeeper.WithClusterScopedKinds(clusterIssuer),
		"mapper": gatekeeper.WithRESTMapper(mapper(clusterIssuer.WithVersion("v1"), meta.RESTScopeRoot)),
	} {
		t.Run(name, func(t *testing.T) {
			for _, o := range []*unstructured.Unstructured{ci, withNamespace(ci, "shop")} {
				res, err := loadScope(t, opt, gatekeeper.WithDefaultNamespace("shop")).Eval(t.Context(), []*unstructured.Unstructured{o})
				require.NoError(t, err)
				assert.Equal(t, want, messages(res), "namespace %q", o.GetNamespace())
			}
		})
	}

	crd := obj(t, `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: clusterissuers.cert-manager.io}
spec:
  group: cert-manager.io
  scope: Cluster
  names: {kind: ClusterIssuer, plural: clusterissuers}
`)
	res, err := loadScope(t, gatekeeper.WithDefaultNamespace("shop")).Eval(t.Context(), []*unstructured.Unstructured{crd, ci})
	require.NoError(t, err)
	assert.Equal(t, want, messages(res), "scope from the CRD among the objects")

	for _, opts := range [][]gatekeeper.Option{nil, {gatekeeper.WithDefaultNamespace("shop")}} {
		_, err = loadScope(t, opts...).Eval(t.Context(), []*unstructured.Unstructured{ci})
		require.ErrorIs(t, err, gatekeeper.ErrUnknownKind)
		assert.ErrorContains(t, err, "cert-manager.io/ClusterIssuer")
		assert.ErrorContains(t, err, "WithClusterScopedKinds")
		assert.NotContains(t, err.Error(), "metadata.namespace")
	}

	// Told namespaced, it is placed in the default namespace like any namespaced kind.
	res, err = loadScope(t, gatekeeper.WithNamespacedKinds(clusterIssuer), gatekeeper.WithDefaultNamespace("shop")).Eval(t.Context(), []*unstructured.Unstructured{ci})
	require.NoError(t, err)
	assert.Equal(t, []string{`ClusterIssuer.cert-manager.io/shop/le gatekeeper:K8sOwner/shop-things deny: no owner (namespace "shop")`}, messages(res))
}

// Kubernetes' own kinds need no option, including those newer than the first list
// (ServiceCIDR, DeviceClass).
func TestBuiltinKindScopes(t *testing.T) {
	objs := []*unstructured.Unstructured{
		obj(t, "apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: extra}\nspec: {cidrs: [10.96.0.0/16]}\n"),
		obj(t, "apiVersion: resource.k8s.io/v1\nkind: DeviceClass\nmetadata: {name: gpu}\n"),
		obj(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"),
	}
	_, err := loadScope(t, gatekeeper.WithDefaultNamespace("shop")).Eval(t.Context(), objs)
	require.NoError(t, err)
	_, err = loadScope(t).Eval(t.Context(), objs)
	require.ErrorContains(t, err, "ConfigMap is namespaced but has no metadata.namespace")
	assert.NotErrorIs(t, err, gatekeeper.ErrUnknownKind)
}

// A template whose Rego fails to evaluate (eval_conflict_error) denies: Gatekeeper
// fails closed.
func TestEvalErrorDenies(t *testing.T) {
	iss := obj(t, "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: le, namespace: shop}\n")
	res, err := loadScope(t, gatekeeper.WithNamespacedKinds(schema.GroupKind{Group: "cert-manager.io", Kind: "Issuer"})).Eval(t.Context(), []*unstructured.Unstructured{iss})
	require.NoError(t, err)
	require.Len(t, res.Findings, 1)
	assert.True(t, res.Denied())
	assert.Equal(t, "gatekeeper:K8sBoom/boom", res.Findings[0].RuleID())
	assert.Contains(t, res.Findings[0].Message, "eval_conflict_error")
}

// A Namespace object whose labels cannot be read is an error naming it, not a
// namespace without labels a namespaceSelector would miss.
func TestMalformedNamespace(t *testing.T) {
	bad := obj(t, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {owner: [a, b]}\n")
	_, err := load(t).Eval(t.Context(), []*unstructured.Unstructured{bad, pod(t, "shop", "p", "", "registry.example/app:1", "cpu: 100m, memory: 64Mi")})
	require.Error(t, err)
	assert.ErrorContains(t, err, "Namespace object of namespace shop")
}

func mapper(gvk schema.GroupVersionKind, scope meta.RESTScope) meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	m.Add(gvk, scope)
	return m
}

func withNamespace(o *unstructured.Unstructured, ns string) *unstructured.Unstructured {
	c := o.DeepCopy()
	c.SetNamespace(ns)
	return c
}
