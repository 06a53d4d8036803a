package gate_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/scan/policy"
)

// A gate with the Baseline Pod Security level and no verifier: a privileged
// container named by tag is denied for both. A pipeline adds
// gate.WithVerifier(verifier) (from sign/cosign), gate.FailOn(report.High) and
// gate.RequireAttestations(...) to check signatures and scan results too.
func ExampleGate() {
	objs, err := render.Parse("pod.yaml", []byte(`apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: shop}
spec:
  containers:
  - name: shell
    image: busybox:latest
    securityContext: {privileged: true}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	checker, err := policy.New(policy.WithLevel(policy.Baseline),
		policy.Disable("image-digest", "the gate checks pinning itself"),
		policy.Disable("image-latest", "the gate checks pinning itself"))
	if err != nil {
		fmt.Println(err)
		return
	}
	g, err := gate.New(gate.WithManifestPolicy(checker))
	if err != nil {
		fmt.Println(err)
		return
	}
	d, err := g.Check(context.Background(), objs)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.Allowed())
	for _, r := range d.Reasons {
		fmt.Println(strings.TrimSpace(string(r.Code) + " " + r.Rule))
	}
	// Output:
	// false
	// not-pinned
	// policy pss/privileged
	// policy resources
	// policy read-only-root-fs
	// policy allow-privilege-escalation
	// policy seccomp
	// policy automount-sa-token
}
