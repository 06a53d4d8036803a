package render_test

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/deploy/render"
)

// TestApply: objects rendered elsewhere get the same pins, labels and revision as
// Render gives its own, and the same strictness.
func TestApply(t *testing.T) {
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: web, image: ghcr.io/acme/web:1.0}]\n"
	objs, err := render.Parse("pod.yaml", []byte(pod))
	require.NoError(t, err)
	d, err := name.NewDigest("ghcr.io/acme/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	require.NoError(t, err)
	require.NoError(t, render.Apply(objs, render.WithImages(d), render.WithApp(render.App{Name: "web"}), render.WithRevision("3")))
	c := objs[0].Object["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	assert.Equal(t, d.String(), c["image"])
	assert.Equal(t, "web", objs[0].GetLabels()[render.LabelName])
	assert.Equal(t, "3", objs[0].GetAnnotations()[render.RevisionAnnotation])

	other, err := name.NewDigest("ghcr.io/acme/other@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	require.NoError(t, err)
	require.ErrorIs(t, render.Apply(objs, render.WithImages(other)), render.ErrImageNotPinned)
	require.NoError(t, render.Apply(objs), "no options: nothing to do")
}
