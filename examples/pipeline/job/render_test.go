package job

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/render"
)

const pushedDigest = "sha256:ab12000000000000000000000000000000000000000000000000000000000000"

// TestRenderUsersOverlayStrict: a user's overlay that does not name the pushed
// repository (here the embedded overlay written out unchanged, still naming the
// placeholder) fails at render, naming the digest that pinned nothing, instead of
// deploying the placeholder unpinned.
func TestRenderUsersOverlayStrict(t *testing.T) {
	overlay, err := WriteManifests(t.TempDir())
	require.NoError(t, err)
	cfg := testConfig()
	cfg.Overlay = overlay
	j, err := New(cfg)
	require.NoError(t, err)
	defer j.Close()
	j.Repo = name.MustParseReference("registry.example/team/hello").Context()
	j.Digest = j.Repo.Digest(pushedDigest)
	_, err = j.render(context.Background())
	require.ErrorIs(t, err, render.ErrImageNotPinned)
	assert.Contains(t, err.Error(), `WithImages("registry.example/team/hello@`+pushedDigest+`")`)

	// Mapped to the pushed repository in the overlay, it renders pinned.
	k := filepath.Join(overlay, "kustomization.yaml")
	b, err := os.ReadFile(k)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(k, append(b, []byte("images:\n- name: hello\n  newName: registry.example/team/hello\n")...), 0o644))
	_, err = j.render(context.Background())
	require.NoError(t, err)
	imgs := deploy.Images(j.Objects)
	require.Len(t, imgs, 1)
	assert.Equal(t, "registry.example/team/hello@"+pushedDigest, imgs[0].Image)
}

// TestNamespaceKustomization: the namespace is set by a kustomization the job
// builds with kustomize's types, so a namespace holding YAML stays one value and
// cannot add a field to the kustomization (a kustomization written with Sprintf
// took "team-a\nnamePrefix: evil-" as a name prefix).
func TestNamespaceKustomization(t *testing.T) {
	j, err := New(testConfig())
	require.NoError(t, err)
	defer j.Close()
	j.cfg.Namespace = "team-a\nnamePrefix: evil-" // past New's checks, if any
	j.Repo = name.MustParseReference("registry.example/team/hello").Context()
	j.Digest = j.Repo.Digest(pushedDigest)
	_, err = j.render(context.Background())
	if err != nil {
		return // kustomize refuses the namespace: fine, nothing renders
	}
	for _, o := range j.Objects {
		if o.GetKind() != "Namespace" { // kustomize names the Namespace after the namespace
			assert.Equal(t, "hello", o.GetName(), "the namespace added a namePrefix")
		}
	}
}
