package gateway_test

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/mesh/gateway"
	"github.com/shipkit/shipkit/mesh/internal/meshtest"
)

// Walk a canary through the steps of a rollout, try an A/B header match, and send
// everything back to stable. The cluster is the test bed's; a program passes its own
// *rest.Config.
func ExampleRouter() {
	ctx := context.Background()
	cfg, cleanup := exampleRoute("example-gateway")
	defer cleanup()

	r, err := gateway.New(cfg, gateway.Route{Namespace: "example-gateway", Name: "web", Stable: "web", Canary: "web-canary"})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := r.Check(ctx); err != nil { // CRD, route and Services in place?
		fmt.Println(err)
		return
	}
	for _, w := range []int32{10, 50, 100} {
		if err := r.SetWeight(ctx, w); err != nil {
			fmt.Println(err)
			return
		}
		got, _ := r.Weight(ctx)
		fmt.Printf("canary weight %d%%\n", got)
	}
	if err := r.SetHeaderMatch(ctx, "X-Canary", "always"); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("X-Canary: always goes to the canary")
	if err := r.Reset(ctx); err != nil {
		fmt.Println(err)
		return
	}
	got, _ := r.Weight(ctx)
	fmt.Printf("after reset: canary weight %d%%\n", got)
	// Output:
	// canary weight 10%
	// canary weight 50%
	// canary weight 100%
	// X-Canary: always goes to the canary
	// after reset: canary weight 0%
}

// exampleRoute creates namespace ns with Services web and web-canary and an
// HTTPRoute web that sends everything to web, in the test bed's cluster.
func exampleRoute(ns string) (*rest.Config, func()) {
	ctx := context.Background()
	c := cluster.Get(exampleTB{})
	crdsOnce.Do(func() { crdsErr = meshtest.Install(ctx, c.RESTConfig(), meshtest.GatewayAPI) })
	must(crdsErr)
	_, err := c.Clientset().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must(err)
	for _, svc := range []string{"web", "web-canary"} {
		_, err := c.Clientset().CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: svc},
			Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": svc}, Ports: []corev1.ServicePort{{Port: 80}}},
		}, metav1.CreateOptions{})
		must(err)
	}
	var route unstructured.Unstructured
	must(yaml.Unmarshal([]byte(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: shared-gateway}]
  rules:
  - backendRefs: [{name: web, port: 80}]
`), &route.Object))
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	must(err)
	_, err = dyn.Resource(gateway.HTTPRoutes).Namespace(ns).Create(ctx, &route, metav1.CreateOptions{})
	must(err)
	return c.RESTConfig(), func() {
		_ = c.Clientset().CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// exampleTB lets an example share the test bed's cluster. Examples cannot skip, so a
// missing test bed fails them (run hack/testbed.sh).
type exampleTB struct{ testing.TB }

func (exampleTB) Helper()                      {}
func (exampleTB) Skipf(f string, args ...any)  { panic(fmt.Sprintf(f, args...)) }
func (exampleTB) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
