package gitops_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	gogit "github.com/go-git/go-git/v5"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gitops"
)

// Write a release to a repository (here a bare repository on disk; a real one is
// https://... with WithBasicAuth), then write it again: the second Write makes no
// commit.
func Example() {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "gitops-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(tmp)
	repo := filepath.Join(tmp, "fleet.git")
	if _, err := gogit.PlainInit(repo, true); err != nil {
		fmt.Println(err)
		return
	}

	w, err := gitops.New("file://"+repo, "clusters/prod/shop",
		gitops.WithArgoCDApplication(gitops.ArgoCDApplication{Name: "shop", DestinationNamespace: "shop"}))
	if err != nil {
		fmt.Println(err)
		return
	}
	// In a pipeline the objects come from deploy/render and the decision from
	// deploy/gate.
	objs := []*unstructured.Unstructured{{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "web", "namespace": "shop"},
		"data":     map[string]any{"mode": "fast"},
	}}}
	for range 2 {
		res, err := w.Write(ctx, objs, &deploy.Decision{})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("changed:", res.Changed, "added:", res.Added)
	}
	// Output:
	// changed: true added: [clusters/prod/shop.argocd.yaml clusters/prod/shop/shop_configmap_web.yaml]
	// changed: false added: []
}
