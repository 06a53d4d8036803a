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

// TestDiffRedactsSecrets: a Secret's diff names the keys of data and stringData that
// are added, changed or removed, and holds none of their values, whatever shape the
// change takes (a key, the whole map, kubectl's copy in an annotation).
func TestDiffRedactsSecrets(t *testing.T) {
	secret := func(data, stringData map[string]any, lastApplied string) map[string]any {
		o := map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "db"}}
		if data != nil {
			o["data"] = data
		}
		if stringData != nil {
			o["stringData"] = stringData
		}
		if lastApplied != "" {
			o["metadata"].(map[string]any)["annotations"] = map[string]any{"kubectl.kubernetes.io/last-applied-configuration": lastApplied}
		}
		return o
	}
	before := secret(map[string]any{"password": "b2xkLXB3", "user": "YWRtaW4=", "gone": "Z29uZQ=="}, nil, `{"data":{"password":"b2xkLXB3"}}`)
	after := secret(map[string]any{"password": "bmV3LXB3", "user": "YWRtaW4=", "token": "dG9r"}, map[string]any{"plain": "s3cr3t"}, `{"data":{"password":"bmV3LXB3"}}`)
	diff := diffObjects(before, after)
	assert.Equal(t, []deploy.FieldDiff{
		{Path: "data.gone", Before: deploy.Redacted},
		{Path: "data.password", Before: deploy.Redacted, After: deploy.Redacted},
		{Path: "data.token", After: deploy.Redacted},
		{Path: "metadata.annotations[kubectl.kubernetes.io/last-applied-configuration]", Before: deploy.Redacted, After: deploy.Redacted},
		{Path: "stringData.plain", After: deploy.Redacted},
	}, diff)
	cs := &deploy.ChangeSet{Changes: []deploy.Change{{Object: deploy.ObjectRef{Kind: "Secret", Namespace: "shop", Name: "db"}, Action: deploy.Configured, Diff: diff}}}
	assert.Equal(t, `Secret/shop/db configured
  data.gone: removed (value redacted)
  data.password: changed (value redacted)
  data.token: added (value redacted)
  metadata.annotations[kubectl.kubernetes.io/last-applied-configuration]: changed (value redacted)
  stringData.plain: added (value redacted)
`, cs.String())

	// A Secret that gets its first data: per key, not the whole map.
	assert.Equal(t, []deploy.FieldDiff{{Path: "data.password", After: deploy.Redacted}},
		diffObjects(secret(nil, nil, ""), secret(map[string]any{"password": "bmV3LXB3"}, nil, "")))
	// A ConfigMap's values are shown.
	cm := func(v string) map[string]any {
		return map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "data": map[string]any{"k": v}}
	}
	assert.Equal(t, []deploy.FieldDiff{{Path: "data.k", Before: "a", After: "b"}}, diffObjects(cm("a"), cm("b")))
}
