package gitops_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gitops"
	"github.com/shipkit/shipkit/internal/gitserver"
	"github.com/shipkit/shipkit/internal/testbed"
)

// objects returns n ConfigMaps and Deployments with images at digest.
func objects(n int, digest string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for i := range n / 2 {
		out = append(out, obj("v1", "ConfigMap", "shop", fmt.Sprintf("cfg-%d", i), map[string]any{"data": map[string]any{"k": "v"}}))
		d := release(digest)[1]
		d.SetName(fmt.Sprintf("web-%d", i))
		out = append(out, d)
	}
	return out
}

// BenchmarkWrite500: a release of 500 objects to the git http-backend server,
// each iteration a new digest (fetch, one commit changing 250 files, push), and
// the same release again (fetch, no commit).
func BenchmarkWrite500(b *testing.B) {
	s, err := gitserver.Start(b.Context(), b.TempDir(), user, password)
	testbed.Check(b, err)
	b.Cleanup(s.Close)
	u, err := s.Init(b.Context(), "bench")
	require.NoError(b, err)
	w, err := gitops.New(u, "shop", gitops.WithBasicAuth(user, password))
	require.NoError(b, err)
	digests := []string{digestA, digestB}
	sets := [][]*unstructured.Unstructured{objects(500, digestA), objects(500, digestB)}
	_, err = w.Write(b.Context(), sets[0], &deploy.Decision{})
	require.NoError(b, err)
	cur := 0 // the set the branch holds
	b.Run("changed", func(b *testing.B) {
		for b.Loop() {
			cur = 1 - cur
			res, err := w.Write(b.Context(), sets[cur], &deploy.Decision{})
			require.NoError(b, err)
			require.True(b, res.Changed, digests[cur])
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		for b.Loop() {
			res, err := w.Write(b.Context(), sets[cur], &deploy.Decision{})
			require.NoError(b, err)
			require.False(b, res.Changed)
		}
	})
	dir := b.TempDir()
	wc, err := gitops.New(u, "shop", gitops.WithBasicAuth(user, password), gitops.WithCloneDir(filepath.Join(dir, "clone")))
	require.NoError(b, err)
	b.Run("changed-clonedir", func(b *testing.B) {
		for b.Loop() {
			cur = 1 - cur
			res, err := wc.Write(b.Context(), sets[cur], &deploy.Decision{})
			require.NoError(b, err)
			require.True(b, res.Changed)
		}
	})
	b.Run("unchanged-clonedir", func(b *testing.B) {
		for b.Loop() {
			res, err := wc.Write(b.Context(), sets[cur], &deploy.Decision{})
			require.NoError(b, err)
			require.False(b, res.Changed)
		}
	})
	// The same with the git CLI: clone, replace the directory's files, add,
	// commit, push (what a pipeline script does).
	var rendered [2]map[string][]byte
	for i := range 2 {
		rendered[i], err = w.Render(sets[i])
		require.NoError(b, err)
	}
	i := 0
	b.Run("git-cli-changed", func(b *testing.B) {
		for b.Loop() {
			i++
			cur = 1 - cur
			work := filepath.Join(dir, fmt.Sprintf("work-%d", i))
			require.NoError(b, s.Git(b.Context(), "", "clone", "--quiet", s.AuthURL("bench"), work))
			require.NoError(b, os.RemoveAll(filepath.Join(work, "shop")))
			require.NoError(b, os.MkdirAll(filepath.Join(work, "shop"), 0o755))
			for name, data := range rendered[cur] {
				require.NoError(b, os.WriteFile(filepath.Join(work, "shop", name), data, 0o644))
			}
			require.NoError(b, s.Git(b.Context(), work, "add", "-A"))
			require.NoError(b, s.Git(b.Context(), work, "commit", "--quiet", "-m", "release"))
			require.NoError(b, s.Git(b.Context(), work, "push", "--quiet", "origin", "HEAD:main"))
		}
	})
}
