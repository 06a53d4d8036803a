package gitops_test

import (
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gitops"
)

// TestRepositoryNotFound: a repository that does not exist is
// transport.ErrRepositoryNotFound on every transport, as go-git's own
// transports made it.
func TestRepositoryNotFound(t *testing.T) {
	s := startServer(t)
	for _, r := range everyTransport(t, s, "nosuch") {
		t.Run(r.name, func(t *testing.T) {
			w, err := gitops.New(r.url, "shop", r.opts...)
			require.NoError(t, err)
			_, err = w.Write(t.Context(), release(digestA), &deploy.Decision{})
			t.Logf("%v", err)
			require.ErrorIs(t, err, transport.ErrRepositoryNotFound)
			assert.ErrorContains(t, err, "fetch branch main of "+r.url+": ")
		})
	}
}
