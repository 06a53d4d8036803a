package render_test

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/shipkit/shipkit/deploy/render"
)

const (
	sha  = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	base = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      initContainers:
      - name: init
        image: registry.example/shop/init:v1
      containers:
      - name: web
        image: registry.example/shop/web:v1
      - name: sidecar
        image: nginx:1.27
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
`
)

func memFS(t *testing.T, files map[string]string) filesys.FileSystem {
	t.Helper()
	fs := filesys.MakeFsInMemory()
	for p, c := range files {
		require.NoError(t, fs.WriteFile(p, []byte(c)))
	}
	return fs
}

func digest(t *testing.T, s string) name.Digest {
	t.Helper()
	d, err := name.NewDigest(s)
	require.NoError(t, err)
	return d
}

func byKind(objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind {
			return o
		}
	}
	return nil
}

func containers(t *testing.T, o *unstructured.Unstructured, field string) map[string]string {
	t.Helper()
	list, found, err := unstructured.NestedSlice(o.Object, "spec", "template", "spec", field)
	require.NoError(t, err)
	require.True(t, found)
	out := map[string]string{}
	for _, c := range list {
		m := c.(map[string]any)
		out[m["name"].(string)] = m["image"].(string)
	}
	return out
}

func TestKustomizeOverlay(t *testing.T) {
	fs := memFS(t, map[string]string{
		"/app/base/kustomization.yaml": "resources: [app.yaml]\n",
		"/app/base/app.yaml":           base,
		"/app/prod/kustomization.yaml": `namespace: shop
resources: [../base]
patches:
- target: {kind: Deployment, name: web}
  patch: |
    - op: replace
      path: /spec/replicas
      value: 3
`,
	})
	r := render.Kustomize(fs, "/app/prod",
		render.WithImages(
			digest(t, "registry.example/shop/web@"+sha),
			digest(t, "index.docker.io/library/nginx@"+sha),
		),
		render.WithApp(render.App{Name: "web", Instance: "web-prod", Version: "1.2.3", PartOf: "shop", ManagedBy: "shipkit"}),
		render.WithRevision("42"),
	)
	objs, err := r.Render(t.Context())
	require.NoError(t, err)
	require.Len(t, objs, 2)

	dep := byKind(objs, "Deployment")
	require.NotNil(t, dep)
	assert.Equal(t, "shop", dep.GetNamespace())
	replicas, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas")
	assert.EqualValues(t, 3, replicas)
	assert.Equal(t, map[string]string{
		"web":     "registry.example/shop/web@" + sha,
		"sidecar": "nginx@" + sha, // normalised match, manifest spelling kept
	}, containers(t, dep, "containers"))
	assert.Equal(t, map[string]string{"init": "registry.example/shop/init:v1"}, containers(t, dep, "initContainers"),
		"an image the build did not produce stays as it is")

	for _, o := range objs {
		assert.Equal(t, "web", o.GetLabels()["app.kubernetes.io/name"], o.GetKind())
		assert.Equal(t, "shipkit", o.GetLabels()[render.LabelManagedBy], o.GetKind())
		assert.Equal(t, "42", o.GetAnnotations()[render.RevisionAnnotation], o.GetKind())
		assert.NotContains(t, o.GetLabels(), render.LabelComponent, "empty fields set no label")
	}
	tmplLabels, _, _ := unstructured.NestedStringMap(dep.Object, "spec", "template", "metadata", "labels")
	assert.Equal(t, "1.2.3", tmplLabels[render.LabelVersion])
	assert.Equal(t, "web", tmplLabels["app"])
	sel, _, _ := unstructured.NestedStringMap(dep.Object, "spec", "selector", "matchLabels")
	assert.Equal(t, map[string]string{"app": "web"}, sel, "selectors are immutable and never changed")
	tmplAnn, _, _ := unstructured.NestedStringMap(dep.Object, "spec", "template", "metadata", "annotations")
	assert.NotContains(t, tmplAnn, render.RevisionAnnotation, "a revision alone must not restart pods")
}

func TestKustomizeOnDisk(t *testing.T) {
	dir := t.TempDir()
	fs := filesys.MakeFsOnDisk()
	require.NoError(t, fs.WriteFile(dir+"/kustomization.yaml", []byte("resources: [app.yaml]\n")))
	require.NoError(t, fs.WriteFile(dir+"/app.yaml", []byte(base)))
	objs, err := render.Kustomize(nil, dir).Render(t.Context())
	require.NoError(t, err)
	assert.Len(t, objs, 2)
}

func TestFiles(t *testing.T) {
	fs := memFS(t, map[string]string{
		"/m/a.yaml":  base,
		"/m/b.json":  `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg"},"data":{"k":"v"}}`,
		"/m/c.yml":   "---\n# only a comment\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: s}\n",
		"/m/skip.md": "not a manifest",
		"/one.yaml":  "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
	})
	objs, err := render.Files(fs, []string{"/one.yaml", "/m"}, render.WithImages(digest(t, "registry.example/shop/web@"+sha))).Render(t.Context())
	require.NoError(t, err)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
	}
	assert.Equal(t, []string{"Namespace", "Deployment", "Service", "ConfigMap", "Secret"}, kinds)
	assert.Equal(t, "registry.example/shop/web@"+sha, containers(t, byKind(objs, "Deployment"), "containers")["web"])
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		kust  bool
		want  []string // substrings of the error
	}{
		{
			name:  "malformed yaml",
			files: map[string]string{"/x/bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: [unclosed\n"},
			want:  []string{"/x/bad.yaml", "document 2"},
		},
		{
			name:  "not an object",
			files: map[string]string{"/x/bad.yaml": "just: data\n"},
			want:  []string{"/x/bad.yaml", "document 1", "apiVersion", "kind", "metadata.name"},
		},
		{
			name:  "list item without name",
			files: map[string]string{"/x/bad.yaml": "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret}\n"},
			want:  []string{"/x/bad.yaml", "item 1", "metadata.name"},
		},
		{
			name:  "unknown kustomization field",
			files: map[string]string{"/x/kustomization.yaml": "resourcez: [a.yaml]\n"},
			kust:  true,
			want:  []string{"/x", `unknown field "resourcez"`},
		},
		{
			name:  "malformed resource in kustomization",
			files: map[string]string{"/x/kustomization.yaml": "resources: [a.yaml]\n", "/x/a.yaml": "kind: [\n"},
			kust:  true,
			want:  []string{"a.yaml"},
		},
		{
			name:  "missing kustomization",
			files: map[string]string{"/x/a.yaml": base},
			kust:  true,
			want:  []string{"/x"},
		},
		{
			name:  "unparseable image",
			files: map[string]string{"/x/a.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: 'UPPER/Case:'}\n"},
			want:  []string{"Pod/p", "spec.containers[name=c].image", "UPPER/Case:"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := memFS(t, tc.files)
			var r *render.Renderer
			if tc.kust {
				r = render.Kustomize(fs, "/x")
			} else {
				r = render.Files(fs, []string{"/x"}, render.WithImages(digest(t, "registry.example/a@"+sha)))
			}
			objs, err := r.Render(t.Context())
			require.Error(t, err)
			assert.Nil(t, objs)
			t.Log(err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestRenderHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := render.Files(memFS(t, map[string]string{"/a.yaml": base}), []string{"/a.yaml"}).Render(ctx)
	assert.ErrorIs(t, err, context.Canceled)
}
