package vap_test

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/scan/policy/vap"
)

// A cluster-scoped custom resource whose CRD is already installed (so not among
// the objects): offline, its scope comes from WithClusterScopedKinds (or a
// cluster's discovery with WithRESTMapper); without either it is an error, never
// judged as if namespaced.
func ExampleWithClusterScopedKinds() {
	ctx := context.Background()
	var objs []*unstructured.Unstructured
	for _, doc := range []string{`
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: owner}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [cert-manager.io], apiVersions: ["*"], operations: [CREATE], resources: [clusterissuers], scope: Cluster}
  validations:
  - expression: "has(object.metadata.labels) && 'owner' in object.metadata.labels"
    message: needs an owner label
`, `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: owner}
spec: {policyName: owner, validationActions: [Deny]}
`, `
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: letsencrypt}
`} {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			fmt.Println(err)
			return
		}
		objs = append(objs, u)
	}
	policies, issuer := objs[:2], objs[2:]

	ps, err := vap.New(policies, vap.WithDefaultNamespace("shop"))
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = ps.Eval(ctx, issuer)
	fmt.Println("unknown scope:", errors.Is(err, vap.ErrUnknownKind))

	ps, err = vap.New(policies, vap.WithDefaultNamespace("shop"),
		vap.WithClusterScopedKinds(schema.GroupKind{Group: "cert-manager.io", Kind: "ClusterIssuer"}))
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := ps.Eval(ctx, issuer)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range res.Findings {
		fmt.Println(f.Object, f.Action)
	}
	// Output:
	// unknown scope: true
	// ClusterIssuer.cert-manager.io/letsencrypt Deny
}

// A listed kind whose resource is not the lower-case plural of its kind: WithResource
// gives it, so resourceRules naming it match.
func ExampleWithResource() {
	var objs []*unstructured.Unstructured
	for _, doc := range []string{`
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: no-octopi}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [example.com], apiVersions: ["*"], operations: [CREATE], resources: [octopi], scope: Cluster}
  validations:
  - {expression: "false", message: no octopi}
`, `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: no-octopi}
spec: {policyName: no-octopi, validationActions: [Deny]}
`, `
apiVersion: example.com/v1
kind: Octopus
metadata: {name: paul}
`} {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			fmt.Println(err)
			return
		}
		objs = append(objs, u)
	}
	octopus := schema.GroupKind{Group: "example.com", Kind: "Octopus"}
	ps, err := vap.New(objs[:2], vap.WithClusterScopedKinds(octopus), vap.WithResource(octopus, "octopi"))
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := ps.Eval(context.Background(), objs[2:])
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range res.Findings {
		fmt.Println(f.Object, f.Action)
	}
	// Output:
	// Octopus.example.com/paul Deny
}
