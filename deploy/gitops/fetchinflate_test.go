package gitops_test

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gitops"
	"github.com/shipkit/shipkit/internal/gitserver"
)

// pushFile commits one file of the given contents to the main branch of a new
// repository of the test server and returns the repository's URL.
func pushFile(t *testing.T, name, file string, contents []byte) (*gitserver.Server, string) {
	t.Helper()
	s := startServer(t)
	ctx := t.Context()
	u, err := s.Init(ctx, name)
	require.NoError(t, err)
	work := t.TempDir()
	require.NoError(t, s.Git(ctx, "", "clone", "--quiet", s.AuthURL(name), work))
	require.NoError(t, os.WriteFile(filepath.Join(work, file), contents, 0o644))
	require.NoError(t, s.Git(ctx, work, "add", "."))
	require.NoError(t, s.Git(ctx, work, "commit", "--quiet", "-m", "one file"))
	require.NoError(t, s.Git(ctx, work, "push", "--quiet", "origin", "HEAD:main"))
	return s, u
}

// TestFetchBoundedInflated: a repository whose pack is small but inflates past
// WithMaxFetchInflatedBytes (one 64 MiB blob of zeros, a pack of well under
// 1 MiB) is refused with ErrFetchTooLarge naming the repository, in memory and
// into a clone directory, before go-git inflates it: Write allocates far less
// than the blob. Within the bound the same repository is written.
func TestFetchBoundedInflated(t *testing.T) {
	const blob = 64 << 20
	s, u := pushFile(t, "bomb", "zeros.bin", make([]byte, blob))
	ctx := t.Context()
	cloneDir := filepath.Join(t.TempDir(), "clone")
	for _, tt := range []struct {
		name string
		opts []gitops.Option
	}{
		{"in memory", nil},
		{"into a clone directory", []gitops.Option{gitops.WithCloneDir(cloneDir)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]gitops.Option{gitops.WithBasicAuth(user, password),
				gitops.WithMaxFetchBytes(1 << 20), gitops.WithMaxFetchInflatedBytes(8 << 20)}, tt.opts...)
			w, err := gitops.New(u, "shop", opts...)
			require.NoError(t, err)
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			_, err = w.Write(ctx, release(digestA), &deploy.Decision{})
			runtime.ReadMemStats(&m1)
			alloc := m1.TotalAlloc - m0.TotalAlloc
			t.Logf("allocated during the refused Write: %.1f MiB (blob %d MiB, bound 8 MiB)", float64(alloc)/(1<<20), blob>>20)
			require.ErrorIs(t, err, gitops.ErrFetchTooLarge)
			assert.ErrorContains(t, err, "fetch branch main of "+u+": ")
			assert.ErrorContains(t, err, "a pack inflating to more than 8388608 bytes (WithMaxFetchInflatedBytes)")
			assert.NotContains(t, err.Error(), password)
			assert.Less(t, alloc, uint64(blob/4), "the blob is not inflated into memory")
		})
	}
	packs, err := filepath.Glob(filepath.Join(cloneDir, "objects", "pack", "*"))
	require.NoError(t, err)
	assert.Empty(t, packs, "nothing of the refused fetch is kept")

	// Within the bound (the default, 1 GiB) the same repository is written.
	w, err := gitops.New(u, "shop", gitops.WithBasicAuth(user, password), gitops.WithCloneDir(cloneDir))
	require.NoError(t, err)
	res, err := w.Write(ctx, release(digestA), &deploy.Decision{})
	require.NoError(t, err)
	assert.NotEmpty(t, res.Commit)
	files, _ := readBack(t, s, "bomb")
	assert.Equal(t, expected(t, "shop", release(digestA)), inDir(files, "shop"))

	_, err = gitops.New(u, "shop", gitops.WithMaxFetchInflatedBytes(0))
	assert.ErrorIs(t, err, gitops.ErrInvalidOption)
}

// openFilesUnder counts this process's open file descriptors on files under dir
// or on deleted files (Linux: /proc/self/fd).
func openFilesUnder(t *testing.T, dir string) (n int, names []string) {
	t.Helper()
	for _, e := range procFDs(t) {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && (strings.HasPrefix(l, dir) || strings.HasSuffix(l, "(deleted)")) {
			n++
			names = append(names, l)
		}
	}
	return n, names
}

// TestFetchRefusedReleasesFiles: three fetches into a clone directory refused by
// the byte or object bound leave no file open (nor deleted but still open) and nothing in the
// pack directory, and leave another fetch's temporary pack in the same directory
// alone.
func TestFetchRefusedReleasesFiles(t *testing.T) {
	noise := make([]byte, 320<<10)
	_, err := rand.Read(noise)
	require.NoError(t, err)
	_, u := pushFile(t, "huge2", "noise.bin", noise)
	ctx := t.Context()
	cloneDir := filepath.Join(t.TempDir(), "clone")
	packDir := filepath.Join(cloneDir, "objects", "pack")
	require.NoError(t, os.MkdirAll(packDir, 0o755))
	other := filepath.Join(packDir, "tmp_pack_0123456789")
	require.NoError(t, os.WriteFile(other, []byte("PACK another fetch in flight"), 0o644))

	before, _ := openFilesUnder(t, cloneDir)
	for _, o := range []gitops.Option{gitops.WithMaxFetchBytes(64 << 10), gitops.WithMaxFetchObjects(2), gitops.WithMaxFetchBytes(100 << 10)} {
		w, err := gitops.New(u, "shop", gitops.WithBasicAuth(user, password), gitops.WithCloneDir(cloneDir), o)
		require.NoError(t, err)
		_, err = w.Write(ctx, release(digestA), &deploy.Decision{})
		require.ErrorIs(t, err, gitops.ErrFetchTooLarge)
	}
	after, names := openFilesUnder(t, cloneDir)
	assert.Equal(t, before, after, "files left open: %v", names)
	left, err := filepath.Glob(filepath.Join(packDir, "*"))
	require.NoError(t, err)
	assert.Equal(t, []string{other}, left, "only the other fetch's file is left")
}
