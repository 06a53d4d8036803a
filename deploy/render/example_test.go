package render_test

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/shipkit/shipkit/deploy/render"
)

// Render a kustomization from memory with the image the build pushed pinned by digest.
func ExampleKustomize() {
	fs := filesys.MakeFsInMemory()
	_ = fs.WriteFile("/app/kustomization.yaml", []byte("namespace: shop\nresources: [web.yaml]\n"))
	_ = fs.WriteFile("/app/web.yaml", []byte(`apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - {name: web, image: registry.example/shop/web:latest}
`))
	built := name.MustParseReference("registry.example/shop/web@sha256:" +
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef").(name.Digest)

	objs, err := render.Kustomize(fs, "/app",
		render.WithImages(built),
		render.WithApp(render.App{Name: "web", ManagedBy: "shipkit"}),
		render.WithRevision("7"),
	).Render(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, o := range objs {
		c := o.Object["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
		fmt.Println(o.GetNamespace(), o.GetName(), c["image"])
		fmt.Println(o.GetLabels()[render.LabelName], o.GetAnnotations()[render.RevisionAnnotation])
	}
	// Output:
	// shop web registry.example/shop/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
	// web 7
}
