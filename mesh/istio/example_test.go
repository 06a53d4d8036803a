package istio_test

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

	"github.com/shipkit/shipkit/mesh/internal/meshtest"
	"github.com/shipkit/shipkit/mesh/istio"
)

// Split the traffic of Service web between the pods labeled version=v1 and
// version=v2. The router writes the DestinationRule's subsets and the
// VirtualService's weights; the cluster is the test bed's.
func ExampleRouter() {
	ctx := context.Background()
	cfg, cleanup := exampleVirtualService("example-istio")
	defer cleanup()

	r, err := istio.New(cfg, istio.Route{
		Namespace: "example-istio", VirtualService: "web", Service: "web",
		Stable: "v1", Canary: "v2", // values of the pods' "version" label
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := r.Check(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range []int32{10, 50} {
		if err := r.SetWeight(ctx, w); err != nil {
			fmt.Println(err)
			return
		}
		got, _ := r.Weight(ctx)
		fmt.Printf("canary weight %d%%\n", got)
	}
	if err := r.Reset(ctx); err != nil {
		fmt.Println(err)
		return
	}
	got, _ := r.Weight(ctx)
	fmt.Printf("after reset: canary weight %d%%\n", got)
	// Output:
	// canary weight 10%
	// canary weight 50%
	// after reset: canary weight 0%
}

// exampleVirtualService creates namespace ns with Service web and a VirtualService
// web that routes to it, in the test bed's cluster.
func exampleVirtualService(ns string) (*rest.Config, func()) {
	ctx := context.Background()
	c := cluster.Get(exampleTB{})
	crdsOnce.Do(func() { crdsErr = meshtest.Install(ctx, c.RESTConfig(), meshtest.Istio) })
	must(crdsErr)
	_, err := c.Clientset().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must(err)
	_, err = c.Clientset().CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	must(err)
	var vs unstructured.Unstructured
	must(yaml.Unmarshal([]byte(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - route: [{destination: {host: web}}]
`), &vs.Object))
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	must(err)
	_, err = dyn.Resource(istio.VirtualServices).Namespace(ns).Create(ctx, &vs, metav1.CreateOptions{})
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
