package gitops_test

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gitops"
)

// TestFetchBounded: a repository larger than the fetch bounds makes Write (in
// memory, and into a clone directory) fail with ErrFetchTooLarge naming the
// repository, never its password, whether the pack has too many bytes or
// announces too many objects; the clone directory keeps no partial pack and
// serves a Write with room enough afterwards.
func TestFetchBounded(t *testing.T) {
	s := startServer(t)
	ctx := t.Context()
	u, err := s.Init(ctx, "huge")
	require.NoError(t, err)
	work := t.TempDir()
	require.NoError(t, s.Git(ctx, "", "clone", "--quiet", s.AuthURL("huge"), work))
	for i := range 40 {
		b := make([]byte, 8<<10)
		_, err := rand.Read(b)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(work, fmt.Sprintf("blob-%02d.bin", i)), b, 0o644))
	}
	require.NoError(t, s.Git(ctx, work, "add", "."))
	require.NoError(t, s.Git(ctx, work, "commit", "--quiet", "-m", "320 KiB of random files"))
	require.NoError(t, s.Git(ctx, work, "push", "--quiet", "origin", "HEAD:main"))

	cloneDir := filepath.Join(t.TempDir(), "clone")
	for _, tt := range []struct {
		name string
		opts []gitops.Option
		says string
	}{
		{"bytes in memory", []gitops.Option{gitops.WithMaxFetchBytes(64 << 10)}, "the repository sent more than the fetch allows: a pack of more than 65536 bytes (WithMaxFetchBytes)"},
		{"objects in memory", []gitops.Option{gitops.WithMaxFetchObjects(10)}, "objects, more than 10 (WithMaxFetchObjects)"},
		{"bytes into a clone directory", []gitops.Option{gitops.WithMaxFetchBytes(64 << 10), gitops.WithCloneDir(cloneDir)}, "more than 65536 bytes"},
		{"objects into a clone directory", []gitops.Option{gitops.WithMaxFetchObjects(10), gitops.WithCloneDir(cloneDir)}, "more than 10 (WithMaxFetchObjects)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, err := gitops.New(u, "shop", append([]gitops.Option{gitops.WithBasicAuth(user, password)}, tt.opts...)...)
			require.NoError(t, err)
			_, err = w.Write(ctx, release(digestA), &deploy.Decision{})
			require.ErrorIs(t, err, gitops.ErrFetchTooLarge)
			assert.ErrorContains(t, err, "fetch branch main of "+u+": ")
			assert.ErrorContains(t, err, tt.says)
			assert.NotContains(t, err.Error(), password)
		})
	}
	tmp, err := filepath.Glob(filepath.Join(cloneDir, "objects", "pack", "tmp_pack_*"))
	require.NoError(t, err)
	assert.Empty(t, tmp, "no partial pack is left in the clone directory")
	packs, err := filepath.Glob(filepath.Join(cloneDir, "objects", "pack", "*.pack"))
	require.NoError(t, err)
	assert.Empty(t, packs, "nothing of the refused fetches is kept")

	// Within the bounds (the defaults), the same repository and clone directory serve.
	for _, opts := range [][]gitops.Option{nil, {gitops.WithCloneDir(cloneDir)}} {
		w, err := gitops.New(u, "shop", append([]gitops.Option{gitops.WithBasicAuth(user, password)}, opts...)...)
		require.NoError(t, err)
		res, err := w.Write(ctx, release(digestA), &deploy.Decision{})
		require.NoError(t, err)
		assert.NotEmpty(t, res.Commit)
	}
	files, _ := readBack(t, s, "huge")
	assert.Contains(t, files, "blob-39.bin")
	assert.Equal(t, expected(t, "shop", release(digestA)), inDir(files, "shop"))

	// The options refuse what would refuse every fetch.
	for _, o := range []gitops.Option{gitops.WithMaxFetchBytes(0), gitops.WithMaxFetchObjects(-1)} {
		_, err := gitops.New(u, "shop", o)
		assert.ErrorIs(t, err, gitops.ErrInvalidOption)
	}
}
