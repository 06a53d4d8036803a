// Package regobench generates the inputs of the Rego benchmarks: scan/policy/rego's
// BenchmarkEval50x500 and hack/bench's rego scenario judge the same rules on the same
// objects, from this one generator. It is not API.
package regobench

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Policy returns n rules in package main of the shapes conftest policies have: a
// walk over the containers with a comparison, a label check, a string function;
// deny, warn and violation rules with string and object messages.
func Policy(n int) string {
	var b strings.Builder
	b.WriteString("package main\n\n")
	for i := range n {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "deny_r%d contains msg if {\n\tsome c in input.spec.template.spec.containers\n\tc.resources.limits.memory == \"%dMi\"\n\tmsg := sprintf(\"%%s: memory limit %dMi is refused\", [c.name])\n}\n\n", i, i, i)
		case 1:
			fmt.Fprintf(&b, "warn_r%d contains msg if {\n\tinput.kind == \"Deployment\"\n\tnot input.metadata.labels[\"team-%d\"]\n\tinput.spec.replicas > %d\n\tmsg := \"replicas above %d need a team-%d label\"\n}\n\n", i, i, i, i, i)
		case 2:
			fmt.Fprintf(&b, "deny_r%d contains msg if {\n\tsome c in input.spec.template.spec.containers\n\tendswith(c.image, \":v%d\")\n\tmsg := sprintf(\"%%s runs a tag v%d\", [c.image])\n}\n\n", i, i, i)
		default:
			fmt.Fprintf(&b, "violation_r%d contains {\"msg\": msg, \"rule\": %d} if {\n\tsome c in input.spec.template.spec.containers\n\tsome p in c.ports\n\tp.containerPort == %d\n\tmsg := sprintf(\"port %%d is reserved\", [p.containerPort])\n}\n\n", i, i, 8000+i)
		}
	}
	return b.String()
}

// Objects returns n Deployments in namespace shop, two containers each, that the
// rules of Policy partly deny and warn about.
func Objects(n int) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, n)
	for i := range n {
		containers := []any{}
		for j := range 2 {
			containers = append(containers, map[string]any{
				"name":      fmt.Sprintf("c%d", j),
				"image":     fmt.Sprintf("registry.example/app%d:v%d", i, i%60),
				"ports":     []any{map[string]any{"containerPort": int64(8000 + (i+j)%60)}},
				"resources": map[string]any{"limits": map[string]any{"memory": fmt.Sprintf("%dMi", (i*7+j)%64)}},
			})
		}
		out[i] = &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": fmt.Sprintf("app%d", i), "namespace": "shop", "labels": map[string]any{"app": fmt.Sprintf("app%d", i)}},
			"spec":     map[string]any{"replicas": int64(i % 5), "template": map[string]any{"spec": map[string]any{"containers": containers}}},
		}}
	}
	return out
}
