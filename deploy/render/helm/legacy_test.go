package helm_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy/render/helm"
)

// copyLegacy copies testdata/legacy (a Helm v2-era chart: Chart.yaml apiVersion v1,
// its dependency in requirements.yaml and requirements.lock, vendored unpacked in
// charts/) to a temporary directory and returns it.
func copyLegacy(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "legacy")
	require.NoError(t, os.CopyFS(dst, os.DirFS("testdata/legacy")))
	return dst
}

// tgzDir writes dir as a gzipped tar whose entries sit under top/, as helm package
// writes a chart, and returns the archive's bytes.
func tgzDir(t *testing.T, dir, top string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: top + "/" + filepath.ToSlash(rel), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	}))
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// checkLegacy asserts the objects of testdata/legacy rendered as release web with
// its dependency enabled: the dependency renders under its alias (cache), with the
// parent's values for it over its own.
func checkLegacy(t *testing.T, rel *helm.Release) {
	t.Helper()
	assert.Equal(t, []string{"ConfigMap/web-cache", "Deployment/web-legacy", "StatefulSet/web-cache"}, refs(rel.Objects))
	assert.Equal(t, helm.Chart{Name: "legacy", Version: "0.3.0", AppVersion: "2.1"}, rel.Chart)
	assert.Empty(t, rel.DroppedHooks)

	dep := find(t, rel.Objects, "Deployment", "web-legacy")
	assert.Equal(t, "quay.io/acme/legacy:2.1", image(t, dep))
	assert.Equal(t, map[string]string{"app": "web-legacy", "chart": "legacy-0.3.0", "release": "web", "heritage": "Helm"}, dep.GetLabels())
	env, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	require.Len(t, env, 1)
	assert.Equal(t, []any{map[string]any{"name": "CACHE_HOST", "value": "web-cache"}}, env[0].(map[string]any)["env"])

	sts := find(t, rel.Objects, "StatefulSet", "web-cache")
	assert.Equal(t, "docker.io/library/redis:4.0.11", image(t, sts), "the dependency's own values")
	assert.Equal(t, "cache-3.1.2", sts.GetLabels()["chart"], "the dependency's .Chart.Name is its alias")
	conf, _, _ := unstructured.NestedString(find(t, rel.Objects, "ConfigMap", "web-cache").Object, "data", "redis.conf")
	assert.Equal(t, "maxmemory 64mb", conf, "the parent's values for the alias override the dependency's")
}

// TestRenderV1Chart renders a Helm v2-era chart (apiVersion v1, dependencies in
// requirements.yaml) as a directory, without apiVersion (Helm 2 accepted that), as
// helm package's archive, and with its dependency vendored as helm dependency
// build's archive; the dependency's condition drops it.
func TestRenderV1Chart(t *testing.T) {
	opts := []helm.Option{helm.WithReleaseName("web"), helm.WithNamespace("store")}
	t.Run("directory", func(t *testing.T) {
		checkLegacy(t, renderOK(t, "testdata/legacy", opts...))
	})
	t.Run("no apiVersion", func(t *testing.T) {
		dir := copyLegacy(t)
		p := filepath.Join(dir, "Chart.yaml")
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, bytes.Replace(b, []byte("apiVersion: v1\n"), nil, 1), 0o600))
		checkLegacy(t, renderOK(t, dir, opts...))
	})
	t.Run("chart archive", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "legacy-0.3.0.tgz")
		require.NoError(t, os.WriteFile(p, tgzDir(t, "testdata/legacy", "legacy"), 0o600))
		checkLegacy(t, renderOK(t, p, opts...))
	})
	t.Run("dependency archive", func(t *testing.T) {
		dir := copyLegacy(t)
		sub := filepath.Join(dir, "charts", "redis")
		tgz := tgzDir(t, sub, "redis")
		require.NoError(t, os.RemoveAll(sub))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "charts", "redis-3.1.2.tgz"), tgz, 0o600))
		checkLegacy(t, renderOK(t, dir, opts...))
	})
	t.Run("condition off", func(t *testing.T) {
		rel := renderOK(t, "testdata/legacy", append(opts, helm.WithSet("cache.enabled=false"))...)
		assert.Equal(t, []string{"Deployment/web-legacy"}, refs(rel.Objects))
	})
}

// TestV1ChartDependencies: requirements.yaml and requirements.lock are held to what
// Chart.yaml's dependencies and Chart.lock are: vendored, at the locked version.
func TestV1ChartDependencies(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		dir := copyLegacy(t)
		require.NoError(t, os.RemoveAll(filepath.Join(dir, "charts")))
		r, err := helm.New(dir)
		require.NoError(t, err)
		_, err = r.Render(t.Context())
		require.ErrorIs(t, err, helm.ErrMissingDependency)
		assert.Contains(t, err.Error(), "redis")
	})
	t.Run("lock mismatch", func(t *testing.T) {
		dir := copyLegacy(t)
		p := filepath.Join(dir, "charts", "redis", "Chart.yaml")
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, bytes.Replace(b, []byte("version: 3.1.2"), []byte("version: 3.1.5"), 1), 0o600))
		r, err := helm.New(dir)
		require.NoError(t, err)
		_, err = r.Render(t.Context())
		require.ErrorIs(t, err, helm.ErrDependencyLock)
		assert.Contains(t, err.Error(), "redis is locked at 3.1.2, vendored at 3.1.5")
	})
}
