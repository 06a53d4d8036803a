package rego_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/policy/rego"
)

// TestLoadCancelled: a cancelled context stops the loading before it reads a file.
func TestLoadCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := rego.LoadFS(ctx, fstest.MapFS{"p.rego": {Data: []byte(mainPolicy)}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "rego: read policies: context canceled", err.Error())

	file := filepath.Join(t.TempDir(), "p.rego")
	require.NoError(t, os.WriteFile(file, []byte(mainPolicy), 0o600))
	_, err = rego.LoadFiles(ctx, []string{file})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "rego: context canceled", err.Error())
}
