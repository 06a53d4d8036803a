package gatekeeper_test

import (
	"context"
	"errors"
	"fmt"
	"testing/fstest"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/shipkit/shipkit/scan/policy/gatekeeper"
)

// A cluster-scoped custom resource whose CRD is already installed (so not among
// the objects): offline, its scope comes from WithClusterScopedKinds (or a
// cluster's discovery with WithRESTMapper); without either it is an error, never
// judged as if namespaced.
func ExampleWithClusterScopedKinds() {
	ctx := context.Background()
	policies := fstest.MapFS{"owner.yaml": {Data: []byte(`apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8sowner}
spec:
  crd: {spec: {names: {kind: K8sOwner}}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sowner
      violation[{"msg": "needs an owner label"}] {
        not input.review.object.metadata.labels.owner
      }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sOwner
metadata: {name: cluster-owner}
spec:
  match:
    scope: Cluster
    kinds: [{apiGroups: ["cert-manager.io"], kinds: ["ClusterIssuer"]}]
`)}}
	issuer := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
		"metadata": map[string]any{"name": "letsencrypt"},
	}}

	p, err := gatekeeper.LoadFS(ctx, policies, gatekeeper.WithDefaultNamespace("shop"))
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = p.Eval(ctx, []*unstructured.Unstructured{issuer})
	fmt.Println("unknown scope:", errors.Is(err, gatekeeper.ErrUnknownKind))

	p, err = gatekeeper.LoadFS(ctx, policies, gatekeeper.WithDefaultNamespace("shop"),
		gatekeeper.WithClusterScopedKinds(schema.GroupKind{Group: "cert-manager.io", Kind: "ClusterIssuer"}))
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := p.Eval(ctx, []*unstructured.Unstructured{issuer})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range res.Findings {
		fmt.Println(f.Object, f.Action, f.Message)
	}
	// Output:
	// unknown scope: true
	// ClusterIssuer.cert-manager.io/letsencrypt deny needs an owner label
}
