package provider

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeFiles writes files (path relative to dir: content) into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(content), 0o644))
	}
}

// sourceTree writes a main module that imports a package of its own, one of a
// module replaced by a local directory, and embeds a file from a subdirectory.
func sourceTree(t *testing.T) (root, app string) {
	root = t.TempDir()
	writeFiles(t, root, map[string]string{
		"app/go.mod": "module example.com/app\n\ngo 1.26\n\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => ../lib\n",
		"app/main.go": `package main

import (
	_ "embed"

	"example.com/app/greet"
	"example.com/lib"
)

//go:embed static/index.html
var page string

func main() { println(greet.Hello(), lib.Name, len(page)) }
`,
		"app/greet/greet.go":      "package greet\n\nfunc Hello() string { return \"hello\" }\n",
		"app/greet/greet_test.go": "package greet\n",
		"app/static/index.html":   "<h1>hi</h1>\n",
		"app/unused/unused.go":    "package unused\n",
		"lib/go.mod":              "module example.com/lib\n\ngo 1.26\n",
		"lib/lib.go":              "package lib\n\nconst Name = \"lib\"\n",
	})
	return root, filepath.Join(root, "app")
}

func TestSourceHash(t *testing.T) {
	tests := []struct {
		name    string
		change  map[string]string // relative to the tree's root
		changes bool
	}{
		{"main package", map[string]string{"app/main.go": "package main\n\nimport (\n\t_ \"embed\"\n\n\t\"example.com/app/greet\"\n\t\"example.com/lib\"\n)\n\n//go:embed static/index.html\nvar page string\n\nfunc main() { println(greet.Hello(), lib.Name, len(page), 2) }\n"}, true},
		{"imported package", map[string]string{"app/greet/greet.go": "package greet\n\nfunc Hello() string { return \"hi\" }\n"}, true},
		{"new file in an imported package", map[string]string{"app/greet/extra.go": "package greet\n"}, true},
		{"embedded file", map[string]string{"app/static/index.html": "<h1>bye</h1>\n"}, true},
		{"go.mod", map[string]string{"app/go.mod": "module example.com/app\n\ngo 1.26.0\n\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => ../lib\n"}, true},
		{"locally replaced module", map[string]string{"lib/lib.go": "package lib\n\nconst Name = \"lib2\"\n"}, true},
		{"test file", map[string]string{"app/greet/greet_test.go": "package greet\n\n// changed\n"}, false},
		{"package the build does not import", map[string]string{"app/unused/unused.go": "package unused\n\n// changed\n"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, app := sourceTree(t)
			before, err := sourceHash(t.Context(), app, ".", "linux", "amd64")
			require.NoError(t, err)
			assert.Regexp(t, `^sha256:[0-9a-f]{64}$`, before)
			again, err := sourceHash(t.Context(), app, ".", "linux", "amd64")
			require.NoError(t, err)
			require.Equal(t, before, again, "the hash of the same source is the same")

			writeFiles(t, root, tt.change)
			after, err := sourceHash(t.Context(), app, ".", "linux", "amd64")
			require.NoError(t, err)
			if tt.changes {
				assert.NotEqual(t, before, after)
			} else {
				assert.Equal(t, before, after)
			}
		})
	}
}

func TestSourceHashErrors(t *testing.T) {
	_, app := sourceTree(t)
	writeFiles(t, app, map[string]string{"broken/main.go": "package main\n\nimport \"example.com/app/missing\"\n\nfunc main() { missing.X() }\n"})
	_, err := sourceHash(t.Context(), app, "./broken", "linux", "amd64")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "example.com/app/missing", "the go command's message says what is wrong")
	assert.Contains(t, err.Error(), app, "the error names the source directory")

	_, err = sourceHash(t.Context(), filepath.Join(app, "nowhere"), ".", "linux", "amd64")
	assert.Error(t, err)
}
