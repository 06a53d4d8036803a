package helm_test

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/deploy/render/helm"
)

// Render a chart directory for a release, with the image the build pushed pinned by
// digest, as the gate and deploy/apply take it.
func Example() {
	built := name.MustParseReference("ghcr.io/acme/shop@sha256:" +
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef").(name.Digest)
	r, err := helm.New("testdata/shop",
		helm.WithReleaseName("web"), helm.WithNamespace("store"),
		helm.WithSet("replicaCount=3"), helm.WithKubeVersion("v1.34.0"),
		helm.WithRender(render.WithImages(built), render.WithRevision("7")))
	if err != nil {
		fmt.Println(err)
		return
	}
	rel, err := r.RenderRelease(context.Background())
	if err != nil {
		fmt.Println(err) // helm.ErrHook, helm.ErrMissingDependency, render.ErrImageNotPinned, ...
		return
	}
	fmt.Println(rel.Chart.Name, rel.Chart.Version)
	for _, o := range rel.Objects {
		fmt.Println(o.GetKind(), o.GetName())
	}
	// Output:
	// shop 0.1.0
	// CustomResourceDefinition widgets.shop.example.com
	// CustomResourceDefinition snapshots.cache.example.com
	// ServiceAccount web-shop
	// ConfigMap web-shop-config
	// Service web-shop
	// Deployment web-shop
	// StatefulSet web-cache
	// Widget web-shop
}
