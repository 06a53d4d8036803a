package replicas_test

import (
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/shipkit/shipkit/mesh/replicas"
)

// Without a mesh, a weight is a share of the replicas: the canary's is rounded down.
func ExampleSplit() {
	for _, w := range []int32{0, 10, 25, 50, 100} {
		stable, canary := replicas.Split(4, w)
		fmt.Printf("%3d%%: %d stable, %d canary\n", w, stable, canary)
	}
	// Output:
	//   0%: 4 stable, 0 canary
	//  10%: 4 stable, 0 canary
	//  25%: 3 stable, 1 canary
	//  50%: 2 stable, 2 canary
	// 100%: 0 stable, 4 canary
}

// Move a canary through a rollout's steps by scaling the two Deployments behind
// Service web. The cluster is the test bed's.
func ExampleRouter() {
	ctx := context.Background()
	cfg, cleanup := exampleDeployments("example-replicas")
	defer cleanup()

	r, err := replicas.New(cfg, replicas.Workload{Namespace: "example-replicas", Service: "web", Stable: "web", Canary: "web-canary"})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := r.Check(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range []int32{10, 50, 100, 0} {
		if err := r.SetWeight(ctx, w); err != nil {
			fmt.Println(err)
			return
		}
		got, _ := r.Weight(ctx)
		fmt.Printf("weight %d: canary has %d%% of the replicas\n", w, got)
	}
	fmt.Println(r.SetHeaderMatch(ctx, "x-canary", "1"))
	// Output:
	// weight 10: canary has 10% of the replicas
	// weight 50: canary has 50% of the replicas
	// weight 100: canary has 100% of the replicas
	// weight 0: canary has 0% of the replicas
	// replicas: Service example-replicas/web: route by header: not supported by this router (a Service balances over pods; use a mesh router)
}

// exampleDeployments creates namespace ns with Deployments web (10 replicas) and
// web-canary (none) behind Service web, in the test bed's cluster.
func exampleDeployments(ns string) (*rest.Config, func()) {
	ctx := context.Background()
	c := cluster.Get(exampleTB{})
	cs := c.Clientset()
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must(err)
	for name, n := range map[string]int32{"web": 10, "web-canary": 0} {
		labels := map[string]string{"app": "web", "deployment": name}
		_, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To(n),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example/web:1"}}},
				},
			},
		}, metav1.CreateOptions{})
		must(err)
	}
	_, err = cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	must(err)
	return c.RESTConfig(), func() { _ = cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}) }
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
