package render_test

import (
	"bytes"
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

// Map the placeholder image the manifests write to the digest the build pushed,
// and write the result as a YAML stream.
func ExampleWithImage() {
	fs := filesys.MakeFsInMemory()
	_ = fs.WriteFile("/app/pod.yaml", []byte(`apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: web, image: hello}]
  volumes: [{name: assets, image: {reference: "hello:assets"}}]
`))
	pushed, err := name.NewDigest("registry.example/shop/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	if err != nil {
		fmt.Println(err)
		return
	}
	objs, err := render.Files(fs, []string{"/app"}, render.WithImage("hello", pushed)).Render(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	var out bytes.Buffer
	if err := render.Write(&out, objs); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(out.String())
	_, err = render.Files(fs, []string{"/app"}, render.WithImage("helo", pushed)).Render(context.Background())
	fmt.Println(err)
	// Output:
	// apiVersion: v1
	// kind: Pod
	// metadata:
	//   name: web
	// spec:
	//   containers:
	//   - image: registry.example/shop/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
	//     name: web
	//   volumes:
	//   - image:
	//       reference: registry.example/shop/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
	//     name: assets
	// render: WithImage("helo"): pins no image of the objects
}
