package policyfile_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/policy/internal/policyfile"
)

func yamlOnly() policyfile.Reader {
	return policyfile.Reader{Engine: "eng", Want: func(p string) bool { return strings.HasSuffix(p, ".yaml") }}
}

// collect records each file's name and contents, in the order add sees them.
func collect(got *[]string) func(string, []byte) error {
	return func(name string, data []byte) error {
		*got = append(*got, name+"="+string(data))
		return nil
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte(data), 0o600))
}

// TestReadPaths: paths in the order given; a directory's wanted files in lexical
// order below it, named by the directory; a file named directly whatever its name.
func TestReadPaths(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "b.yaml"), "b")
	write(t, filepath.Join(dir, "a.yaml"), "a")
	write(t, filepath.Join(dir, "sub", "c.yaml"), "c")
	write(t, filepath.Join(dir, "README.md"), "skipped")
	direct := filepath.Join(t.TempDir(), "direct.txt")
	write(t, direct, "d")

	var got []string
	require.NoError(t, yamlOnly().ReadPaths(t.Context(), []string{direct, dir}, collect(&got)))
	assert.Equal(t, []string{
		direct + "=d",
		filepath.Join(dir, "a.yaml") + "=a",
		filepath.Join(dir, "b.yaml") + "=b",
		filepath.Join(dir, "sub", "c.yaml") + "=c",
	}, got)
}

func TestReadPathsErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	err := yamlOnly().ReadPaths(t.Context(), []string{missing}, collect(new([]string)))
	require.ErrorIs(t, err, fs.ErrNotExist)
	assert.Equal(t, "eng: stat "+missing+": no such file or directory", err.Error())

	// add's error for a file named directly is returned as it is.
	file := filepath.Join(dir, "p.yaml")
	write(t, file, "x")
	bad := errors.New("eng: p.yaml: document 1: bad")
	err = yamlOnly().ReadPaths(t.Context(), []string{file}, func(string, []byte) error { return bad })
	assert.Same(t, bad, err)

	// Below a directory too: it names the file and the engine already.
	err = yamlOnly().ReadPaths(t.Context(), []string{dir}, func(string, []byte) error { return bad })
	assert.Same(t, bad, err)
}

func TestReadFS(t *testing.T) {
	fsys := fstest.MapFS{
		"z.yaml":       {Data: []byte("z")},
		"lib/a.yaml":   {Data: []byte("a")},
		"lib/a.yaml.x": {Data: []byte("skipped")},
	}
	var got []string
	require.NoError(t, yamlOnly().ReadFS(t.Context(), fsys, collect(&got)))
	assert.Equal(t, []string{"lib/a.yaml=a", "z.yaml=z"}, got)

	all := policyfile.Reader{Engine: "eng"}
	got = nil
	require.NoError(t, all.ReadFS(t.Context(), fsys, collect(&got)))
	assert.Len(t, got, 3, "a nil Want admits every file")

	bad := errors.New("bad")
	err := yamlOnly().ReadFS(t.Context(), fsys, func(string, []byte) error { return bad })
	assert.Same(t, bad, err)

	// A file that cannot be read is wrapped.
	err = yamlOnly().ReadFS(t.Context(), fstest.MapFS{"a.yaml": {Mode: fs.ModeSymlink}}, collect(new([]string)))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "eng: read policies: ")
}

// TestCancelled: a cancelled context stops before the next file (the copies this
// package replaced read every file regardless).
func TestCancelled(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), "a")
	write(t, filepath.Join(dir, "b.yaml"), "b")
	ctx, cancel := context.WithCancel(t.Context())
	var got []string
	stopAfterOne := func(name string, data []byte) error {
		cancel()
		return collect(&got)(name, data)
	}
	err := yamlOnly().ReadPaths(ctx, []string{dir}, stopAfterOne)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "eng: read policies: context canceled", err.Error())
	assert.Len(t, got, 1, "b.yaml is not read after the cancel")

	err = yamlOnly().ReadPaths(ctx, []string{filepath.Join(dir, "a.yaml")}, collect(&got))
	require.ErrorIs(t, err, context.Canceled)
	err = yamlOnly().ReadFS(ctx, os.DirFS(dir), collect(&got))
	require.ErrorIs(t, err, context.Canceled)
	assert.Len(t, got, 1)
}
