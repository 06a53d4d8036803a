package gatekeeper_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/policy/gatekeeper"
)

// TestLoadErrorsNameFileAndDocument: a document that does not decode, or a policy
// without a name, is an error naming its file and document, whether the file is
// named directly or found below a directory.
func TestLoadErrorsNameFileAndDocument(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	noName := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\napiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sX\nmetadata: {}\n"
	require.NoError(t, os.WriteFile(file, []byte(noName), 0o600))
	_, err := gatekeeper.LoadFiles(t.Context(), []string{file})
	require.Error(t, err)
	assert.Equal(t, "gatekeeper: "+file+": document 2: a constraints.gatekeeper.sh/v1beta1 without kind or metadata.name", err.Error())

	// Below a directory the same error, not prefixed twice.
	_, err2 := gatekeeper.LoadFiles(t.Context(), []string{dir})
	require.Error(t, err2)
	assert.Equal(t, err.Error(), err2.Error())

	_, err = gatekeeper.LoadFS(t.Context(), fstest.MapFS{"sub/bad.yml": {Data: []byte("a: b\n---\n[not: closed\n")}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "sub/bad.yml: document 2: ")
}

// TestLoadCancelled: a cancelled context stops the loading before it reads a file.
func TestLoadCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := gatekeeper.LoadFS(ctx, fstest.MapFS{"p.yaml": {Data: []byte("a: b\n")}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "gatekeeper: read policies: context canceled", err.Error())

	_, err = gatekeeper.LoadFiles(ctx, []string{"testdata"})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "gatekeeper: context canceled", err.Error())
}
