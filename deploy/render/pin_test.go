package render_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/render"
)

// workloads names the placeholder "hello" (and other images) in every place the
// walker pins: a Deployment's containers and image volume, a Rollout, an Argo
// Workflow and a Tekton Task.
const workloads = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers: [{name: init, image: "hello:placeholder"}]
      containers: [{name: web, image: hello}, {name: proxy, image: "nginx:1.27"}]
      volumes: [{name: assets, image: {reference: "hello:v1"}}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec: {template: {spec: {containers: [{name: web, image: hello}]}}}
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: wf}
spec: {templates: [{name: t, script: {image: hello, source: echo}}]}
---
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: t}
spec: {steps: [{name: s, image: "docker.io/library/hello:1"}]}
`

func images(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, u := range deploy.Images(objs) {
		out = append(out, u.Object.Kind+" "+u.Path+" "+u.Image)
	}
	return out
}

func renderWith(t *testing.T, manifests string, opts ...render.Option) ([]*unstructured.Unstructured, error) {
	t.Helper()
	return render.Files(memFS(t, map[string]string{"/m.yaml": manifests}), []string{"/m.yaml"}, opts...).Render(t.Context())
}

// TestWithImage maps the name the manifests write to the pushed digest everywhere
// the walker finds it, like kustomize's images: and Flux's spec.images.
func TestWithImage(t *testing.T) {
	pushed := digest(t, "registry.example/team/hello@"+sha)
	objs, err := renderWith(t, workloads, render.WithImage("hello", pushed))
	require.NoError(t, err)
	p := "registry.example/team/hello@" + sha
	assert.Equal(t, []string{
		"Deployment spec.template.spec.initContainers[name=init].image " + p,
		"Deployment spec.template.spec.containers[name=web].image " + p,
		"Deployment spec.template.spec.containers[name=proxy].image nginx:1.27",
		"Deployment spec.template.spec.volumes[name=assets].image.reference " + p,
		"Rollout spec.template.spec.containers[name=web].image " + p,
		"Workflow spec.templates[name=t].script.image " + p,
		"Task spec.steps[name=s].image " + p, // docker.io/library/hello is hello
	}, images(objs))

	// With a tag, only that tag; and WithImages on top by repository.
	objs, err = renderWith(t, workloads,
		render.WithImage("hello:placeholder", pushed),
		render.WithImages(digest(t, "index.docker.io/library/nginx@"+sha)),
		render.AllowUnusedImages())
	require.NoError(t, err)
	got := images(objs)
	assert.Equal(t, "Deployment spec.template.spec.initContainers[name=init].image "+p, got[0])
	assert.Equal(t, "Deployment spec.template.spec.containers[name=web].image hello", got[1])
	assert.Equal(t, "Deployment spec.template.spec.containers[name=proxy].image nginx@"+sha, got[2])
}

// TestPinsAreStrict: a mapping or digest that pins nothing, a zero digest and two
// digests for one repository are errors naming them, not a silent no-op.
func TestPinsAreStrict(t *testing.T) {
	other := "sha256:" + strings.Repeat("f", 64)
	for _, tt := range []struct {
		name string
		opts []render.Option
		is   error
		says string
	}{
		{"a name the manifests do not write", []render.Option{render.WithImage("helo", digest(t, "registry.example/hello@"+sha))},
			render.ErrImageNotPinned, `WithImage("helo")`},
		{"a tag the manifests do not write", []render.Option{render.WithImage("hello:v2", digest(t, "registry.example/hello@"+sha))},
			render.ErrImageNotPinned, `WithImage("hello:v2")`},
		{"a digest of another repository", []render.Option{render.WithImages(digest(t, "registry.example/other@"+sha))},
			render.ErrImageNotPinned, `WithImages("registry.example/other@` + sha + `")`},
		{"a zero digest", []render.Option{render.WithImage("hello", name.Digest{})}, render.ErrNoDigest, `WithImage("hello")`},
		{"a zero digest in WithImages", []render.Option{render.WithImages(name.Digest{})}, render.ErrNoDigest, `WithImages("")`},
		{"a zero digest is an error even when unused images are allowed",
			[]render.Option{render.WithImage("hello", name.Digest{}), render.AllowUnusedImages()}, render.ErrNoDigest, `WithImage("hello")`},
		{"two digests for one repository", []render.Option{render.WithImages(digest(t, "nginx@"+sha), digest(t, "nginx@"+other))},
			render.ErrImageConflict, "nginx@" + other},
		{"a mapping and a digest that disagree", []render.Option{
			render.WithImage("hello", digest(t, "registry.example/hello@"+sha)), render.WithImages(digest(t, "registry.example/hello@"+other))},
			render.ErrImageConflict, `WithImage("hello") and WithImages("registry.example/hello@` + other + `")`},
		{"a mapping by digest", []render.Option{render.WithImage("hello@"+sha, digest(t, "registry.example/hello@"+sha))},
			nil, "names a digest"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := renderWith(t, workloads, tt.opts...)
			require.Error(t, err)
			assert.Nil(t, objs)
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
			assert.Contains(t, err.Error(), tt.says)
			t.Log(err)
		})
	}
	_, err := renderWith(t, workloads, render.WithImage("helo", digest(t, "registry.example/hello@"+sha)), render.AllowUnusedImages())
	assert.NoError(t, err, "AllowUnusedImages lets a mapping pin nothing")
	_, err = renderWith(t, workloads, render.WithImage("hello", digest(t, "registry.example/hello@"+sha)),
		render.WithImages(digest(t, "registry.example/hello@"+sha)))
	assert.NoError(t, err, "a mapping and a digest that agree")
}

// TestWrite writes a YAML stream that Parse reads back as the same objects.
func TestWrite(t *testing.T) {
	objs, err := renderWith(t, workloads)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, render.Write(&buf, append(objs[:2:2], nil, objs[2], objs[3])))
	assert.Equal(t, 3, strings.Count(buf.String(), "---\n"))
	assert.True(t, strings.HasPrefix(buf.String(), "apiVersion: apps/v1\n"))
	back, err := render.Parse("stream.yaml", buf.Bytes())
	require.NoError(t, err)
	require.Len(t, back, len(objs))
	for i := range objs {
		assert.Equal(t, objs[i].Object, back[i].Object)
	}

	assert.Error(t, render.Write(failing{}, objs), "a writer's error is returned")
	bad := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "c"}, "data": map[string]any{"f": func() {}}}}
	assert.ErrorContains(t, render.Write(&buf, []*unstructured.Unstructured{bad}), "ConfigMap/c")
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("disk full") }
