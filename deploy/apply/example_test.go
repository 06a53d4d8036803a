package apply_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/render"
)

// Apply a set twice, then plan a change. The cluster is the test bed's; a program
// passes its own *rest.Config (from clientcmd or rest.InClusterConfig).
func ExampleManager() {
	ctx := context.Background()
	cfg := cluster.Get(exampleTB{}).RESTConfig()

	m, err := apply.New(cfg, apply.Options{
		FieldManager: "example",
		Wait:         time.Minute,
		ApplySet:     &apply.ApplySet{Name: "example-set", Namespace: "example-apply"},
		Prune:        true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	objs, err := render.Parse("settings.yaml", []byte(`apiVersion: v1
kind: Namespace
metadata: {name: example-apply}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: example-apply}
data: {color: blue}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() {
		_ = cluster.Get(exampleTB{}).Clientset().CoreV1().Namespaces().Delete(ctx, "example-apply", metav1.DeleteOptions{})
	}()
	for range 2 {
		cs, err := m.Apply(ctx, objs)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Print(cs)
	}
	_ = unstructured.SetNestedField(objs[1].Object, "green", "data", "color")
	plan, err := m.Plan(ctx, objs)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(plan)
	// Output:
	// Namespace/example-apply created
	// ConfigMap/example-apply/settings created
	// Namespace/example-apply unchanged
	// ConfigMap/example-apply/settings unchanged
	// Namespace/example-apply unchanged
	// ConfigMap/example-apply/settings configured
	//   data.color: blue -> green
}

// exampleTB lets an example share the test bed's cluster. Examples cannot skip, so a
// missing test bed fails them (run hack/testbed.sh).
type exampleTB struct{ testing.TB }

func (exampleTB) Helper()                      {}
func (exampleTB) Skipf(f string, args ...any)  { panic(fmt.Sprintf(f, args...)) }
func (exampleTB) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
