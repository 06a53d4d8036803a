package gatekeeper_test

import (
	"context"
	"fmt"
	"testing/fstest"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/scan/policy/gatekeeper"
)

// A ConstraintTemplate and its Constraint, embedded (an embed.FS works the same),
// judging a release in a deploy gate as Gatekeeper's admission webhook would.
func Example() {
	ctx := context.Background()
	policies := fstest.MapFS{"policy/owner.yaml": {Data: []byte(`apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8srequiredlabels
spec:
  crd:
    spec:
      names:
        kind: K8sRequiredLabels
      validation:
        openAPIV3Schema:
          type: object
          properties:
            labels: {type: array, items: {type: string}}
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8srequiredlabels

        violation[{"msg": msg}] {
          missing := {l | l := input.parameters.labels[_]} - {l | input.review.object.metadata.labels[l]}
          count(missing) > 0
          msg := sprintf("%v %v needs labels %v", [input.review.kind.kind, input.review.name, missing])
        }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredLabels
metadata:
  name: owner
spec:
  match:
    kinds: [{apiGroups: ["apps"], kinds: ["Deployment"]}]
    excludedNamespaces: ["kube-*"]
  parameters:
    labels: ["owner"]
`)}}
	p, err := gatekeeper.LoadFS(ctx, policies)
	if err != nil {
		fmt.Println(err)
		return
	}
	g, err := gate.New(gate.WithObjectPolicy(p))
	if err != nil {
		fmt.Println(err)
		return
	}
	deployment := func(ns string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": "web", "namespace": ns},
		}}
	}
	d, err := g.Check(ctx, []*unstructured.Unstructured{deployment("shop"), deployment("kube-system")})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d)
	// Output:
	// denied:
	//   Deployment/shop/web: [gatekeeper:K8sRequiredLabels/owner] Deployment web needs labels {"owner"}
}
