package gitops_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gitops"
)

// serverHook installs a hook (a shell script) in the server's repository.
func serverHook(t *testing.T, bare, name, script string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(bare, "hooks", name), []byte("#!/bin/sh\n"+script+"\n"), 0o755)) //nolint:gosec // a hook is run by git
}

// untilTestEnds is a shell command that runs for up to 30 s, ending when the
// test does (its servers wait for their hooks).
func untilTestEnds(t *testing.T) string {
	t.Helper()
	flag := filepath.Join(t.TempDir(), "running")
	require.NoError(t, os.WriteFile(flag, nil, 0o600))
	t.Cleanup(func() { _ = os.Remove(flag) })
	return fmt.Sprintf("i=0; while [ -e %s ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done", flag)
}

// TestPushHookAndContext: a server's pre-receive hook that runs for 30 s does
// not hold Write past its context's deadline (1 s) on any transport (over
// file:// it took the hook's 30 s: its process holds the command's standard
// error); and a post-receive hook leaving a process in the background for 30 s
// does not hold a Write without a deadline.
func TestPushHookAndContext(t *testing.T) {
	s := startServer(t)
	for _, r := range everyTransport(t, s, "X") {
		t.Run(r.name+", slow hook", func(t *testing.T) {
			name := "slow-" + r.name
			seed(t, s, name)
			serverHook(t, filepath.Join(s.Root, name+".git"), "pre-receive", untilTestEnds(t))
			w, err := gitops.New(strings.Replace(r.url, "X", name, 1), "shop", r.opts...)
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			start := time.Now()
			_, err = w.Write(ctx, release(digestA), &deploy.Decision{})
			took := time.Since(start)
			t.Logf("took %v: %v", took, err)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Less(t, took, 3*time.Second, "Write ends at its deadline")
		})
	}
	t.Run("file, a hook's background process", func(t *testing.T) {
		seed(t, s, "bg")
		bare := filepath.Join(s.Root, "bg.git")
		serverHook(t, bare, "post-receive", "cat >/dev/null; ("+untilTestEnds(t)+") & exit 0")
		w, err := gitops.New("file://"+bare, "shop")
		require.NoError(t, err)
		start := time.Now()
		res, err := w.Write(t.Context(), release(digestA), &deploy.Decision{})
		took := time.Since(start)
		t.Logf("took %v", took)
		require.NoError(t, err)
		assert.True(t, res.Changed)
		assert.Less(t, took, 5*time.Second, "Write does not wait for the hook's background process")
		assert.Equal(t, res.Commit, git(t, s, bare, "rev-parse", "main"))
	})
}
