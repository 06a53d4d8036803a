package rollout_test

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/observe/analysis"
)

// printRouter stands in for mesh/gateway, mesh/istio or mesh/replicas.
type printRouter struct{}

func (printRouter) SetWeight(_ context.Context, w int32) error {
	fmt.Printf("router: canary %d%%\n", w)
	return nil
}

func (printRouter) SetHeaderMatch(context.Context, string, string) error { return nil }

func (printRouter) Reset(context.Context) error {
	fmt.Println("router: all traffic to stable")
	return nil
}

// A canary that goes 20% → 100%, judged by its success rate after each weight. A real
// program calls rollout.NewCanary with its *rest.Config (the one it gives deploy/apply
// and the router), a router from mesh, a metrics
// provider such as observe/prometheus, and a state key it keeps with its credentials
// (at least 32 random bytes, the same for every process that runs the rollout).
func ExampleCanaryRollout_Run() {
	stateKey := []byte("example key: use 32 random bytes")
	client := fake.NewClientset( // a stable and a canary Deployment, both rolled out
		deployment("web", stableLabels, "registry.example/web:v1", 4, true),
		deployment("web-canary", canaryLabels, "registry.example/web:v2", 1, true),
	)
	metrics := observe.ProviderFunc(func(context.Context, string) (float64, error) { return 0.999, nil })
	successRate := analysis.SuccessRate(metrics, `app="web",track="canary"`, 0.99)
	successRate.Count, successRate.Interval = 2, time.Millisecond

	r, err := rollout.NewCanaryWithClient(client, rollout.Canary{
		Name:           "web",
		Namespace:      "shop",
		StableSelector: map[string]string{"app": "web", "track": "stable"},
		CanarySelector: map[string]string{"app": "web", "track": "canary"},
		Router:         printRouter{},
		Steps: []rollout.Step{
			rollout.SetWeight(20), rollout.Analysis(successRate),
			rollout.SetWeight(100), rollout.Analysis(successRate),
		},
	}, rollout.WithPollInterval(10*time.Millisecond), rollout.WithStateKey(stateKey))
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := r.Run(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range res.Steps {
		fmt.Printf("step %d %s: %s at %d%%\n", s.Index+1, s.Step, s.Phase, s.Weight)
		if s.Analysis != nil {
			for _, m := range s.Analysis.Measurements {
				fmt.Printf("  %s = %v %s\n", m.Check, m.Value, m.Phase)
			}
		}
	}
	fmt.Println(res.Phase)
	// Output:
	// router: all traffic to stable
	// router: canary 20%
	// router: canary 100%
	// router: all traffic to stable
	// step 1 setWeight 20: Completed at 20%
	// step 2 analysis success-rate: Completed at 20%
	//   success-rate = 0.999 Successful
	//   success-rate = 0.999 Successful
	// step 3 setWeight 100: Completed at 100%
	// step 4 analysis success-rate: Completed at 100%
	//   success-rate = 0.999 Successful
	//   success-rate = 0.999 Successful
	// Promoted
}

// The canary of a new release, built beside the stable Deployment the cluster runs
// under the same name: the new pod template, its own name and track label, and no
// replicas (the rollout scales it). Apply it, then give both Deployments' labels to
// the rollout.
func ExampleCanaryDeployment() {
	release := deployment("web", map[string]string{"app": "web", "track": "stable"}, "registry.example/web:v2", 4, false)
	canary, err := rollout.CanaryDeployment(release)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(canary.Name, canary.Spec.Template.Spec.Containers[0].Image)
	fmt.Println("labels:", canary.Labels)
	fmt.Println("selector:", canary.Spec.Selector.MatchLabels)
	fmt.Println("pod labels:", canary.Spec.Template.Labels)
	fmt.Println("replicas set:", canary.Spec.Replicas != nil)

	spec := rollout.Canary{
		Name: release.Name, Namespace: release.Namespace,
		StableSelector: release.Labels, CanarySelector: canary.Labels,
		// Router, Services, Steps...
	}
	fmt.Println("rollout:", spec.StableSelector, "→", spec.CanarySelector)
	// Output:
	// web-canary registry.example/web:v2
	// labels: map[app:web track:canary]
	// selector: map[app:web track:canary]
	// pod labels: map[app:web track:canary]
	// replicas set: false
	// rollout: map[app:web track:stable] → map[app:web track:canary]
}
