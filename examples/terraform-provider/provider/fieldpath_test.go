package provider

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		path string
		want []segment
	}{
		{"spec.replicas", []segment{{text: "spec"}, {text: "replicas"}}},
		{"spec.template.spec.containers[name=web].image", []segment{
			{text: "spec"}, {text: "template"}, {text: "spec"}, {text: "containers"},
			{text: "web", bracket: true, named: true}, {text: "image"},
		}},
		{"metadata.labels[app.kubernetes.io/name]", []segment{
			{text: "metadata"}, {text: "labels"}, {text: "app.kubernetes.io/name", bracket: true},
		}},
		{"spec.ports[0].port", []segment{{text: "spec"}, {text: "ports"}, {text: "0", bracket: true}, {text: "port"}}},
		{"data[a]b]", []segment{{text: "data"}, {text: "a]b", bracket: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := parsePath(tt.path)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	for _, bad := range []string{"", "spec.[x", "spec..x"} {
		_, err := parsePath(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func deploymentObject() map[string]any {
	return map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]any{"name": "web", "labels": map[string]any{"app.kubernetes.io/name": "web"}},
		"spec": map[string]any{
			"replicas": int64(2),
			"template": map[string]any{"spec": map[string]any{"containers": []any{
				map[string]any{"name": "web", "image": "r/web@sha256:new", "ports": []any{map[string]any{"containerPort": int64(8080)}}},
				map[string]any{"name": "proxy", "image": "r/proxy:1"},
			}}},
		},
	}
}

func TestSetPath(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		value  any
		remove bool
		check  func(t *testing.T, obj map[string]any)
	}{
		{"scalar", "spec.replicas", int64(5), false, func(t *testing.T, obj map[string]any) {
			assert.Equal(t, int64(5), obj["spec"].(map[string]any)["replicas"])
		}},
		{"named list item", "spec.template.spec.containers[name=proxy].image", "r/proxy:0", false, func(t *testing.T, obj map[string]any) {
			c := obj["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
			assert.Equal(t, "r/proxy:0", c[1].(map[string]any)["image"])
			assert.Equal(t, "r/web@sha256:new", c[0].(map[string]any)["image"])
		}},
		{"index", "spec.template.spec.containers[name=web].ports[0].containerPort", int64(9090), false, func(t *testing.T, obj map[string]any) {
			c := obj["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
			assert.Equal(t, int64(9090), c[0].(map[string]any)["ports"].([]any)[0].(map[string]any)["containerPort"])
		}},
		{"bracketed key", "metadata.labels[app.kubernetes.io/name]", "old", false, func(t *testing.T, obj map[string]any) {
			assert.Equal(t, "old", obj["metadata"].(map[string]any)["labels"].(map[string]any)["app.kubernetes.io/name"])
		}},
		{"new maps on the way", "metadata.annotations[team.example/owner]", "ops", false, func(t *testing.T, obj map[string]any) {
			assert.Equal(t, map[string]any{"team.example/owner": "ops"}, obj["metadata"].(map[string]any)["annotations"])
		}},
		{"new named item", "spec.template.spec.containers[name=debug]", map[string]any{"name": "debug", "image": "busybox"}, false, func(t *testing.T, obj map[string]any) {
			c := obj["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
			require.Len(t, c, 3)
			assert.Equal(t, "busybox", c[2].(map[string]any)["image"])
		}},
		{"remove field", "metadata.labels[app.kubernetes.io/name]", nil, true, func(t *testing.T, obj map[string]any) {
			assert.Empty(t, obj["metadata"].(map[string]any)["labels"])
		}},
		{"remove named item", "spec.template.spec.containers[name=web]", nil, true, func(t *testing.T, obj map[string]any) {
			c := obj["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
			require.Len(t, c, 1)
			assert.Equal(t, "proxy", c[0].(map[string]any)["name"])
		}},
		{"remove what is not there", "spec.strategy.type", nil, true, func(t *testing.T, obj map[string]any) {
			assert.Equal(t, deploymentObject(), obj)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := deploymentObject()
			require.NoError(t, setPath(obj, tt.path, tt.value, tt.remove))
			tt.check(t, obj)
		})
	}
}

func TestSetPathErrors(t *testing.T) {
	obj := deploymentObject()
	assert.ErrorContains(t, setPath(obj, "spec.replicas.x", "y", false), "spec.replicas.x")
	assert.ErrorContains(t, setPath(obj, "spec.template.spec.containers[7].image", "y", false), "no list item 7")
	assert.Equal(t, deploymentObject()["spec"].(map[string]any)["replicas"], obj["spec"].(map[string]any)["replicas"])
}
