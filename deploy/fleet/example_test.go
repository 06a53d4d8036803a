package fleet_test

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/fleet"
)

// applierFunc adapts a function to deploy.Applier.
type applierFunc func(ctx context.Context, objs []*unstructured.Unstructured) (*deploy.ChangeSet, error)

func (f applierFunc) Apply(ctx context.Context, objs []*unstructured.Unstructured) (*deploy.ChangeSet, error) {
	return f(ctx, objs)
}

// Apply one set to several clusters. A program gets its clusters from
// fleet.FromKubeconfig(path, []string{"prod-eu", "prod-us"}, apply.Options{...});
// here two stand-ins report what they would do.
func ExampleApply() {
	created := applierFunc(func(_ context.Context, objs []*unstructured.Unstructured) (*deploy.ChangeSet, error) {
		cs := &deploy.ChangeSet{}
		for _, o := range objs {
			cs.Append(deploy.Change{Object: deploy.RefOf(o), Action: deploy.Created})
		}
		return cs, nil
	})
	clusters := []fleet.Cluster{{Name: "prod-eu", Applier: created}, {Name: "prod-us", Applier: created}}
	cm := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "settings", "namespace": "shop"},
	}}
	results, err := fleet.Apply(context.Background(), clusters, []*unstructured.Unstructured{cm},
		fleet.Options{Concurrency: 2, StopOnFailure: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range results {
		fmt.Printf("%s: %s", r.Cluster, r.Changes)
	}
	// Output:
	// prod-eu: ConfigMap/shop/settings created
	// prod-us: ConfigMap/shop/settings created
}

// Take the inventory of a fleet: what runs and what is declared, by digest, with
// where each image is used. A program gets its targets from
// fleet.TargetsFromKubeconfig(path, []string{"prod-eu", "prod-us"}); the
// unreachable stand-in here is reported and the rest goes on.
func ExampleTakeInventory() {
	targets := []fleet.Target{{Name: "prod-eu", Config: &rest.Config{Host: "https://127.0.0.1:1", Timeout: time.Second}}}
	inv, err := fleet.TakeInventory(context.Background(), targets, fleet.InventoryOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, img := range inv.Images {
		fmt.Println(img.Digest, len(img.Uses), "uses")
	}
	fmt.Println(len(inv.Images), "images;", inv.Clusters[0].Name, "read:", inv.Clusters[0].Error == "")
	// Output:
	// 0 images; prod-eu read: false
}
