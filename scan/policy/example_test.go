package policy_test

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/scan/policy"
)

func Example() {
	manifest := `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: web
        image: registry.example/web:v1.2.0
        resources:
          requests: {cpu: 100m, memory: 64Mi}
          limits: {memory: 64Mi}
        securityContext:
          privileged: true
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
`
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(manifest), &obj); err != nil {
		fmt.Println(err)
		return
	}
	checker, err := policy.New(
		policy.WithLevel(policy.Baseline),
		policy.Disable("image-digest", "pinned by deploy.Render at apply time"),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := checker.Check(context.Background(), []*unstructured.Unstructured{{Object: obj}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("passed:", res.Passed())
	for _, v := range res.Violations {
		fmt.Println(v.Rule, v.Path)
		fmt.Println("  fix:", v.Fix)
	}
	for _, d := range res.Disabled {
		fmt.Printf("disabled %s: %s\n", d.Rule, d.Reason)
	}
	// Output:
	// passed: false
	// pss/privileged spec.template.spec.containers[name=web].securityContext.privileged
	//   fix: remove securityContext.privileged or set it to false
	// disabled image-digest: pinned by deploy.Render at apply time
}
