package apply

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/shipkit/shipkit/deploy"
)

func TestDiffObjects(t *testing.T) {
	before := map[string]any{
		"metadata": map[string]any{"name": "web", "resourceVersion": "1", "annotations": map[string]any{"a.b/c": "x"}},
		"spec": map[string]any{
			"replicas": int64(2),
			"containers": []any{
				map[string]any{"name": "web", "image": "a@sha256:1"},
				map[string]any{"name": "side", "image": "b"},
			},
			"args": []any{"x", "y"},
		},
		"status": map[string]any{"ready": int64(1)},
	}
	after := map[string]any{
		"metadata": map[string]any{"name": "web", "resourceVersion": "2", "annotations": map[string]any{"a.b/c": "y"}},
		"spec": map[string]any{
			"replicas": int64(2),
			"containers": []any{
				map[string]any{"name": "side", "image": "b"},
				map[string]any{"name": "web", "image": "a@sha256:2"},
				map[string]any{"name": "new", "image": "c"},
			},
			"args":   []any{"x"},
			"paused": true,
		},
		"status": map[string]any{"ready": int64(2)},
	}
	assert.Equal(t, []deploy.FieldDiff{
		{Path: "metadata.annotations[a.b/c]", Before: "x", After: "y"},
		{Path: "spec.args", Before: []any{"x", "y"}, After: []any{"x"}},
		{Path: "spec.containers[name=new]", After: map[string]any{"name": "new", "image": "c"}},
		{Path: "spec.containers[name=web].image", Before: "a@sha256:1", After: "a@sha256:2"},
		{Path: "spec.paused", After: true},
	}, diffObjects(before, after), "server-maintained fields and status are left out; named lists match by name")
	assert.Empty(t, diffObjects(before, before))
}

func TestManagerOf(t *testing.T) {
	assert.Equal(t, "kubectl-edit", managerOf(`conflict with "kubectl-edit" using apps/v1`))
	assert.Equal(t, "odd message", managerOf("odd message"))
}
