package vap_test

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/scan/policy/vap"
)

// A ValidatingAdmissionPolicy and its binding, as the cluster has them, judging a
// rendered Deployment before it is applied.
func Example() {
	policy := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
		"metadata": map[string]any{"name": "max-replicas"},
		"spec": map[string]any{
			"matchConstraints": map[string]any{"resourceRules": []any{map[string]any{
				"apiGroups": []any{"apps"}, "apiVersions": []any{"v1"}, "operations": []any{"CREATE", "UPDATE"}, "resources": []any{"deployments"},
			}}},
			"validations": []any{map[string]any{
				"expression":        "object.spec.replicas <= 5",
				"messageExpression": "'replicas ' + string(object.spec.replicas) + ' > 5'",
			}},
		},
	}}
	binding := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
		"metadata": map[string]any{"name": "max-replicas"},
		"spec":     map[string]any{"policyName": "max-replicas", "validationActions": []any{"Deny"}},
	}}
	ps, err := vap.New([]*unstructured.Unstructured{policy, binding})
	if err != nil {
		fmt.Println(err)
		return
	}
	web := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "shop"},
		"spec":     map[string]any{"replicas": int64(10)},
	}}
	res, err := ps.Eval(context.Background(), []*unstructured.Unstructured{web})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range res.Findings {
		fmt.Println(f)
	}
	// Output:
	// [vap:max-replicas/max-replicas] Deployment/shop/web: Deny: deployments.apps "web" is forbidden: ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas' denied request: replicas 10 > 5
}
