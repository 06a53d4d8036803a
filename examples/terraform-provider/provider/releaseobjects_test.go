package provider

import (
	"encoding/base64"
	"slices"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/deploy"
)

func parseYAML(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(s), &m))
	return &unstructured.Unstructured{Object: m}
}

const (
	webYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  template:
    spec:
      containers:
      - image: r/web@sha256:new
        name: web
`
	nsYAML = `apiVersion: v1
kind: Namespace
metadata:
  name: shop
`
	cmYAML = `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: other
`
)

func TestEncodeDecodeObjects(t *testing.T) {
	objs := []*unstructured.Unstructured{parseYAML(t, webYAML), parseYAML(t, nsYAML), parseYAML(t, cmYAML)}
	m, err := encodeObjects(objs)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{
		"Deployment/web":           webYAML,
		"Namespace/shop":           nsYAML,
		"ConfigMap/other/settings": cmYAML,
	}, m)

	back, err := decodeObjects(m)
	require.NoError(t, err)
	require.Len(t, back, 3)
	again, err := encodeObjects(back)
	require.NoError(t, err)
	assert.Equal(t, m, again, "decoding and encoding again gives the same text")

	_, err = encodeObjects([]*unstructured.Unstructured{parseYAML(t, webYAML), parseYAML(t, webYAML)})
	assert.ErrorContains(t, err, "Deployment/web appears twice")

	_, err = decodeObjects(map[string]string{"Deployment/web": "kind: Deployment\n"})
	assert.ErrorContains(t, err, "Deployment/web")
}

func TestKeyOf(t *testing.T) {
	m := map[string]string{"Deployment/web": "", "ConfigMap/other/settings": "", "Namespace/shop": ""}
	tests := []struct {
		ref  deploy.ObjectRef
		want string
		ok   bool
	}{
		{deploy.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: "shop", Name: "web"}, "Deployment/web", true},
		{deploy.ObjectRef{Kind: "ConfigMap", Namespace: "other", Name: "settings"}, "ConfigMap/other/settings", true},
		{deploy.ObjectRef{Kind: "Namespace", Name: "shop"}, "Namespace/shop", true},
		{deploy.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: "other", Name: "web"}, "", false},
		{deploy.ObjectRef{Kind: "ConfigMap", Namespace: "shop", Name: "gone"}, "", false},
	}
	for _, tt := range tests {
		got, ok := keyOf(m, tt.ref, "shop")
		assert.Equal(t, tt.ok, ok, tt.ref.String())
		assert.Equal(t, tt.want, got, tt.ref.String())
	}
}

func TestLiveView(t *testing.T) {
	objs := map[string]string{"Deployment/web": webYAML, "Namespace/shop": nsYAML, "ConfigMap/other/settings": cmYAML}
	cs := &deploy.ChangeSet{Changes: []deploy.Change{
		{Object: deploy.ObjectRef{Kind: "Namespace", Name: "shop"}, Action: deploy.Unchanged},
		{Object: deploy.ObjectRef{Kind: "ConfigMap", Namespace: "other", Name: "settings"}, Action: deploy.Created},
		{Object: deploy.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: "shop", Name: "web"}, Action: deploy.Configured,
			Diff: []deploy.FieldDiff{
				{Path: "spec.replicas", Before: int64(5), After: int64(2)},
				{Path: "spec.template.spec.containers[name=web].image", Before: "r/web@sha256:old", After: "r/web@sha256:new"},
				{Path: "metadata.annotations[team.example/owner]", After: "ops"},
			},
			Drift: []deploy.Conflict{{Field: ".spec.replicas", Manager: "kubectl-scale"}}},
		{Object: deploy.ObjectRef{Kind: "Secret", Namespace: "shop", Name: "stray"}, Action: deploy.Pruned},
	}}
	live, err := liveView(objs, cs, "shop")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{
		"Namespace/shop": nsYAML,
		"Deployment/web": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 5
  template:
    spec:
      containers:
      - image: r/web@sha256:old
        name: web
`,
	}, live, "missing objects are left out, changed fields show their live values")
	assert.Equal(t, webYAML, objs["Deployment/web"], "the input is not changed")
}

func TestPlannedObjects(t *testing.T) {
	rendered := map[string]string{"Deployment/web": webYAML, "Namespace/shop": nsYAML + "# cosmetic\n", "ConfigMap/other/settings": cmYAML}
	prior := map[string]string{"Deployment/web": "old", "Namespace/shop": nsYAML}
	cs := &deploy.ChangeSet{Changes: []deploy.Change{
		{Object: deploy.ObjectRef{Kind: "Namespace", Name: "shop"}, Action: deploy.Unchanged},
		{Object: deploy.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: "shop", Name: "web"}, Action: deploy.Configured},
		{Object: deploy.ObjectRef{Kind: "ConfigMap", Namespace: "other", Name: "settings"}, Action: deploy.Created},
	}}
	got := plannedObjects(rendered, prior, cs, "shop")
	assert.Equal(t, map[string]string{
		"Deployment/web":           webYAML,
		"Namespace/shop":           nsYAML, // the dry run changes nothing: keep the state's text
		"ConfigMap/other/settings": cmYAML,
	}, got)
}

func TestSecretsApart(t *testing.T) {
	var m releaseModel
	var diags diag.Diagnostics
	all := map[string]string{"Deployment/web": webYAML, "Secret/web": "kind: Secret\n", "Secret/other/db": "kind: Secret\n"}
	m.setObjects(t.Context(), all, &diags)
	require.False(t, diags.HasError(), "%v", diags)
	assert.Equal(t, []string{"Deployment/web"}, keysOf(m.Objects.Elements()))
	assert.Equal(t, []string{"Secret/other/db", "Secret/web"}, keysOf(m.SecretObjects.Elements()))

	back, known := m.objects(t.Context(), &diags)
	require.False(t, diags.HasError(), "%v", diags)
	assert.True(t, known)
	assert.Equal(t, all, back)

	m.SecretObjects = types.MapUnknown(types.StringType)
	_, known = m.objects(t.Context(), &diags)
	assert.False(t, known, "unknown secrets make the objects unknown")

	imported := releaseModel{Objects: types.MapNull(types.StringType), SecretObjects: types.MapNull(types.StringType)}
	none, known := imported.objects(t.Context(), &diags)
	assert.True(t, known)
	assert.Empty(t, none)
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestLiveViewOfSecret: a plan says which keys of a Secret changed in the cluster,
// not their values (deploy.Redacted); the live view marks those keys with a
// placeholder, valid base64 under data, so the Secret still shows as changing and a
// later dry run of the view is accepted.
func TestLiveViewOfSecret(t *testing.T) {
	secretYAML := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  password: bmV3\n  token: dG9r\n"
	cs := &deploy.ChangeSet{Changes: []deploy.Change{
		{Object: deploy.ObjectRef{Kind: "Secret", Namespace: "shop", Name: "db"}, Action: deploy.Configured,
			Diff: []deploy.FieldDiff{
				{Path: "data.password", Before: deploy.Redacted, After: deploy.Redacted},
				{Path: "data.token", After: deploy.Redacted},
				{Path: "stringData.note", Before: deploy.Redacted},
			}},
	}}
	live, err := liveView(map[string]string{"Secret/db": secretYAML}, cs, "shop")
	require.NoError(t, err)
	placeholder := base64.StdEncoding.EncodeToString([]byte(changedInCluster))
	assert.Equal(t, "apiVersion: v1\ndata:\n  password: "+placeholder+"\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  note: "+changedInCluster+"\n", live["Secret/db"])
	assert.NotContains(t, cs.String(), "bmV3")
}
