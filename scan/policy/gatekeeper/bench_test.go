package gatekeeper_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/scan/policy/gatekeeper"
)

// benchPolicies is n ConstraintTemplates, each with one Constraint: template i
// requires label li on Deployments and caps replicas at i+2.
func benchPolicies(n int) []*unstructured.Unstructured {
	var docs []string
	for i := range n {
		docs = append(docs, fmt.Sprintf(`apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: bench%[1]d}
spec:
  crd:
    spec:
      names: {kind: Bench%[1]d}
      validation: {openAPIV3Schema: {type: object, properties: {label: {type: string}, max: {type: integer}}}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package bench%[1]d
      violation[{"msg": msg}] {
        not input.review.object.metadata.labels[input.parameters.label]
        msg := sprintf("%%v: no label %%v", [input.review.name, input.parameters.label])
      }
      violation[{"msg": msg}] {
        input.review.object.spec.replicas > input.parameters.max
        msg := sprintf("%%v: more than %%v replicas", [input.review.name, input.parameters.max])
      }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: Bench%[1]d
metadata: {name: c%[1]d}
spec:
  match: {kinds: [{apiGroups: ["apps"], kinds: ["Deployment"]}], excludedNamespaces: ["kube-*"]}
  parameters: {label: l%[1]d, max: %[2]d}
`, i, i+2))
	}
	var objs []*unstructured.Unstructured
	for _, d := range docs {
		objs = append(objs, mustParse(d)...)
	}
	return objs
}

func mustParse(doc string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, part := range strings.Split(doc, "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(part), &u.Object); err != nil {
			panic(err)
		}
		out = append(out, u)
	}
	return out
}

// benchObjects is n Deployments in 5 namespaces with some of the labels l0..l9
// and 1 to 12 replicas.
func benchObjects(n int) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, n)
	for i := range n {
		labels := map[string]any{}
		for l := range 10 {
			if (i+l)%3 != 0 {
				labels[fmt.Sprintf("l%d", l)] = "x"
			}
		}
		out[i] = &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": fmt.Sprintf("app%d", i), "namespace": fmt.Sprintf("ns%d", i%5), "labels": labels},
			"spec":     map[string]any{"replicas": int64(1 + i%12)},
		}}
	}
	return out
}

// BenchmarkEval10x500: 10 templates with a Constraint each on 500 Deployments,
// compile excluded (policies are compiled once).
func BenchmarkEval10x500(b *testing.B) {
	p, err := gatekeeper.New(b.Context(), benchPolicies(10))
	require.NoError(b, err)
	objs := benchObjects(500)
	var findings int
	for b.Loop() {
		res, err := p.Eval(b.Context(), objs)
		if err != nil {
			b.Fatal(err)
		}
		findings = len(res.Findings)
	}
	b.ReportMetric(float64(findings), "findings")
}

func TestBenchPoliciesFind(t *testing.T) {
	p, err := gatekeeper.New(t.Context(), benchPolicies(10))
	require.NoError(t, err)
	res, err := p.Eval(t.Context(), benchObjects(500))
	require.NoError(t, err)
	// Object i lacks label l when (i+l)%3 == 0: 1666 or 1667 of 5000 pairs; and
	// exceeds template l's max (l+2) when 1+i%12 > l+2.
	want := 0
	for i := range 500 {
		for l := range 10 {
			if (i+l)%3 == 0 {
				want++
			}
			if 1+i%12 > l+2 {
				want++
			}
		}
	}
	require.Len(t, res.Findings, want)
	t.Logf("%d findings", len(res.Findings))
}
