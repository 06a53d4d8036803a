package gitops_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gitops"
)

// TestServerSideOutcomesOnEveryTransport: what the server decides reaches
// Write the same way over HTTP, SSH, git:// and file://: an update hook that
// refuses the push fails Write and leaves the branch; a branch moved while the
// push was on its way (by a pre-receive hook, once) is refused as stale, and
// Write fetches, rebases and lands on top of it; a branch rewritten to an
// unrelated history (the clone directory's commits pruned from the server) is
// fetched anew and written on.
func TestServerSideOutcomesOnEveryTransport(t *testing.T) {
	s := startServer(t)
	for _, r := range everyTransport(t, s, "X") {
		repo := func(t *testing.T, what string) (string, string) {
			t.Helper()
			name := what + "-" + r.name
			seed(t, s, name)
			return strings.Replace(r.url, "X", name, 1), filepath.Join(s.Root, name+".git")
		}
		t.Run(r.name+", refused", func(t *testing.T) {
			u, bare := repo(t, "refused")
			before := git(t, s, bare, "rev-parse", "main")
			serverHook(t, bare, "update", "echo no releases today >&2; exit 1")
			w, err := gitops.New(u, "shop", r.opts...)
			require.NoError(t, err)
			_, err = w.Write(t.Context(), release(digestA), &deploy.Decision{})
			require.Error(t, err)
			assert.ErrorContains(t, err, "push to "+u+": ")
			assert.Equal(t, before, git(t, s, bare, "rev-parse", "main"), "the branch did not move")
		})
		t.Run(r.name+", stale", func(t *testing.T) {
			u, bare := repo(t, "stale")
			head := git(t, s, bare, "rev-parse", "main")
			other := git(t, s, bare, "commit-tree", "-p", head, "-m", "someone else's", git(t, s, bare, "rev-parse", "main^{tree}"))
			once := filepath.Join(t.TempDir(), "moved")
			serverHook(t, bare, "pre-receive", fmt.Sprintf(
				"cat >/dev/null; [ -e %[1]s ] && exit 0; touch %[1]s; env -u GIT_QUARANTINE_PATH git update-ref refs/heads/main %[2]s", once, other))
			w, err := gitops.New(u, "shop", r.opts...)
			require.NoError(t, err)
			res, err := w.Write(t.Context(), release(digestA), &deploy.Decision{})
			require.NoError(t, err)
			assert.Equal(t, 2, res.Attempts, "refused once as stale, then rebased")
			assert.Equal(t, other, git(t, s, bare, "rev-parse", "main^"), "on top of the commit that moved the branch")
		})
		t.Run(r.name+", rewritten", func(t *testing.T) {
			u, bare := repo(t, "rewritten")
			w, err := gitops.New(u, "shop", append(r.opts, gitops.WithCloneDir(filepath.Join(t.TempDir(), "clone")))...)
			require.NoError(t, err)
			_, err = w.Write(t.Context(), release(digestA), &deploy.Decision{})
			require.NoError(t, err)
			root := git(t, s, bare, "commit-tree", "-m", "rewritten", git(t, s, bare, "rev-parse", "main^{tree}"))
			git(t, s, bare, "update-ref", "refs/heads/main", root)
			git(t, s, bare, "reflog", "expire", "--expire=now", "--all")
			git(t, s, bare, "gc", "--quiet", "--prune=now")
			res, err := w.Write(t.Context(), release(digestB), &deploy.Decision{})
			require.NoError(t, err)
			assert.True(t, res.Changed)
			assert.Equal(t, root, git(t, s, bare, "rev-parse", "main^"))
			git(t, s, bare, "fsck", "--no-dangling")
		})
	}
}
