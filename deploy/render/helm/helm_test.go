package helm_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/deploy/render/helm"
)

const shopDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func renderOK(t *testing.T, source string, opts ...helm.Option) *helm.Release {
	t.Helper()
	r, err := helm.New(source, opts...)
	require.NoError(t, err)
	rel, err := r.RenderRelease(t.Context())
	require.NoError(t, err)
	return rel
}

func refs(objs []*unstructured.Unstructured) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.GetKind() + "/" + o.GetName()
	}
	return out
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s/%s in %v", kind, name, refs(objs))
	return nil
}

func image(t *testing.T, o *unstructured.Unstructured) string {
	t.Helper()
	w, err := deploy.Walk(o)
	require.NoError(t, err)
	require.NotEmpty(t, w.Images, "%s has no image", deploy.RefOf(o))
	return w.Images[0].Image
}

func TestRenderChart(t *testing.T) {
	rel := renderOK(t, "testdata/shop", helm.WithReleaseName("web"), helm.WithNamespace("store"))
	// CRDs first (the chart's, then its dependency's), then Helm's install order;
	// the test hook is dropped.
	assert.Equal(t, []string{
		"CustomResourceDefinition/widgets.shop.example.com",
		"CustomResourceDefinition/snapshots.cache.example.com",
		"ServiceAccount/web-shop",
		"ConfigMap/web-shop-config",
		"Service/web-shop",
		"Deployment/web-shop",
		"StatefulSet/web-cache",
		"Widget/web-shop",
	}, refs(rel.Objects))
	assert.Equal(t, helm.Chart{Name: "shop", Version: "0.1.0", AppVersion: "1.4.2"}, rel.Chart)
	assert.Equal(t, "web", rel.Name)
	assert.Equal(t, "store", rel.Namespace)
	assert.Empty(t, rel.Digest.DigestStr(), "a directory has no digest")
	assert.Equal(t, []string{"Pod/web-shop-test (test) from shop/templates/tests/test-connection.yaml"}, rel.DroppedHooks)
	assert.Contains(t, rel.Notes, "The shop web-shop listens on port 8080.")

	dep := find(t, rel.Objects, "Deployment", "web-shop")
	assert.Equal(t, "store", dep.GetNamespace())
	assert.Equal(t, "ghcr.io/acme/shop:1.4.2", image(t, dep))
	assert.Equal(t, "shop-0.1.0", dep.GetLabels()["helm.sh/chart"], "helpers from _helpers.tpl")
	replicas, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas")
	assert.Equal(t, int64(2), replicas, "numbers are int64, as deploy/render's")
	// The parent's values override the dependency's.
	assert.Equal(t, "small", find(t, rel.Objects, "StatefulSet", "web-cache").GetLabels()["size"])

	// lookup and getHostByName reach nothing while rendering.
	cm := find(t, rel.Objects, "ConfigMap", "web-shop-config")
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	assert.Equal(t, map[string]string{"secretFound": "no", "dns": ""}, data)
}

func TestRenderDefaultsAndCapabilities(t *testing.T) {
	rel := renderOK(t, "testdata/shop")
	assert.Equal(t, "shop", rel.Name, "the release is named after the chart")
	assert.Equal(t, "default", rel.Namespace)
	assert.NotContains(t, refs(rel.Objects), "ServiceMonitor/shop", "no monitoring API by default")

	rel = renderOK(t, "testdata/shop", helm.WithAPIVersions("monitoring.coreos.com/v1/ServiceMonitor"),
		helm.WithKubeVersion("v1.31.4"))
	assert.Contains(t, refs(rel.Objects), "ServiceMonitor/shop")
	env, _, _ := unstructured.NestedSlice(find(t, rel.Objects, "Deployment", "shop").Object,
		"spec", "template", "spec", "containers")
	assert.Contains(t, fmt.Sprint(env), "v1.31.4")

	r, err := helm.New("testdata/shop", helm.WithKubeVersion("1.27.0"))
	require.NoError(t, err)
	_, err = r.Render(t.Context())
	require.ErrorIs(t, err, helm.ErrNotInstallable)
	assert.Contains(t, err.Error(), ">=1.28.0-0")
}

func TestRenderValues(t *testing.T) {
	dir := t.TempDir()
	f1 := filepath.Join(dir, "a.yaml")
	f2 := filepath.Join(dir, "b.yaml")
	require.NoError(t, os.WriteFile(f1, []byte("replicaCount: 5\nimage: {tag: \"2.0\"}\n"), 0o600))
	require.NoError(t, os.WriteFile(f2, []byte("replicaCount: 6\ncache: {enabled: false}\n"), 0o600))
	rel := renderOK(t, "testdata/shop", helm.WithValuesFiles(f1, f2),
		helm.WithValues(map[string]any{"service": map[string]any{"port": 9090}}),
		helm.WithSet("replicaCount=7"))
	dep := find(t, rel.Objects, "Deployment", "shop")
	replicas, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas")
	assert.Equal(t, int64(7), replicas, "--set last")
	assert.Equal(t, "ghcr.io/acme/shop:2.0", image(t, dep), "values files merged, not replaced")
	assert.NotContains(t, refs(rel.Objects), "StatefulSet/shop-cache", "the dependency's condition")
	assert.NotContains(t, refs(rel.Objects), "CustomResourceDefinition/snapshots.cache.example.com",
		"a disabled dependency's CRDs")
	ports, _, _ := unstructured.NestedSlice(find(t, rel.Objects, "Service", "shop").Object, "spec", "ports")
	assert.EqualValues(t, 9090, ports[0].(map[string]any)["targetPort"])

	// values.schema.json is enforced.
	r, err := helm.New("testdata/shop", helm.WithSet("replicaCount=0"))
	require.NoError(t, err)
	_, err = r.Render(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "replicaCount")

	r, err = helm.New("testdata/shop", helm.WithValuesFiles(filepath.Join(dir, "missing.yaml")))
	require.NoError(t, err)
	_, err = r.Render(t.Context())
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestRenderPinsWithRenderOptions(t *testing.T) {
	built, err := name.NewDigest("ghcr.io/acme/shop@" + shopDigest)
	require.NoError(t, err)
	rel := renderOK(t, "testdata/shop", helm.WithRender(render.WithImages(built),
		render.WithRevision("12"), render.WithApp(render.App{ManagedBy: "shipkit"})))
	dep := find(t, rel.Objects, "Deployment", "shop")
	assert.Equal(t, "ghcr.io/acme/shop@"+shopDigest, image(t, dep))
	assert.Equal(t, "12", dep.GetAnnotations()[render.RevisionAnnotation])
	assert.Equal(t, "shipkit", dep.GetLabels()[render.LabelManagedBy])

	// render's strictness holds: a digest that pins nothing is an error.
	other, err := name.NewDigest("ghcr.io/acme/other@" + shopDigest)
	require.NoError(t, err)
	r, err := helm.New("testdata/shop", helm.WithRender(render.WithImages(other)))
	require.NoError(t, err)
	_, err = r.Render(t.Context())
	require.ErrorIs(t, err, render.ErrImageNotPinned)
}

func TestHooks(t *testing.T) {
	r, err := helm.New("testdata/hooked")
	require.NoError(t, err)
	_, err = r.Render(t.Context())
	require.ErrorIs(t, err, helm.ErrHook)
	assert.Contains(t, err.Error(), "Job/hooked-migrate (pre-install,pre-upgrade) from hooked/templates/migrate.yaml")

	rel := renderOK(t, "testdata/hooked", helm.WithoutHooks())
	assert.Equal(t, []string{"ConfigMap/hooked"}, refs(rel.Objects))
	assert.Equal(t, []string{"Job/hooked-migrate (pre-install,pre-upgrade) from hooked/templates/migrate.yaml"}, rel.DroppedHooks)
}

// copyChart copies testdata/shop to a temporary directory and returns it.
func copyChart(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "shop")
	require.NoError(t, os.CopyFS(dst, os.DirFS("testdata/shop")))
	return dst
}

func TestDependencies(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		dir := copyChart(t)
		require.NoError(t, os.RemoveAll(filepath.Join(dir, "charts")))
		r, err := helm.New(dir)
		require.NoError(t, err)
		_, err = r.Render(t.Context())
		require.ErrorIs(t, err, helm.ErrMissingDependency)
		assert.Contains(t, err.Error(), "cache")
	})
	t.Run("lock mismatch", func(t *testing.T) {
		dir := copyChart(t)
		p := filepath.Join(dir, "charts", "cache", "Chart.yaml")
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, bytes.Replace(b, []byte("version: 1.2.0"), []byte("version: 1.2.7"), 1), 0o600))
		r, err := helm.New(dir)
		require.NoError(t, err)
		_, err = r.Render(t.Context())
		require.ErrorIs(t, err, helm.ErrDependencyLock)
		assert.Contains(t, err.Error(), "cache is locked at 1.2.0, vendored at 1.2.7")
	})
	t.Run("helmignore", func(t *testing.T) {
		dir := copyChart(t)
		// An ignored file may be anything, even a template that does not parse.
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "templates", "notes"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "templates", "notes", "x.yaml"), []byte("{{ broken"), 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "templates", "x.yaml.swp"), []byte("{{ broken"), 0o600))
		renderOK(t, dir)
	})
}

func TestLibraryChart(t *testing.T) {
	dir := copyChart(t)
	p := filepath.Join(dir, "Chart.yaml")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, bytes.Replace(b, []byte("type: application"), []byte("type: library"), 1), 0o600))
	r, err := helm.New(dir)
	require.NoError(t, err)
	_, err = r.Render(t.Context())
	require.ErrorIs(t, err, helm.ErrNotInstallable)
}

func TestInvalidOptions(t *testing.T) {
	_, err := helm.New("https://charts.example.com/shop-0.1.0.tgz",
		helm.WithReleaseName("Not_A_Name"), helm.WithNamespace("no/slash"), helm.WithKubeVersion("one"),
		helm.WithSet("a.b"), helm.WithMaxFiles(-1), helm.WithMaxArchiveSize(-1), helm.WithMaxChartSize(-2),
		helm.WithValuesFiles(""), helm.WithKeychain(nil), helm.WithTransport(nil), helm.WithLogger(nil),
		helm.WithAPIVersions("a b"))
	require.ErrorIs(t, err, helm.ErrInvalidOption)
	require.ErrorIs(t, err, deploy.ErrInvalidOption)
	for _, want := range []string{"WithReleaseName", "WithNamespace", "WithKubeVersion", "WithSet", "WithMaxFiles",
		"WithMaxArchiveSize", "WithMaxChartSize", "WithValuesFiles", "WithKeychain", "WithTransport", "WithLogger",
		"WithAPIVersions", "nothing is fetched"} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = helm.New("")
	require.ErrorIs(t, err, helm.ErrInvalidOption)
	_, err = helm.New("oci://Bad Ref")
	require.ErrorIs(t, err, helm.ErrInvalidOption)
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r, err := helm.New("testdata/shop")
	require.NoError(t, err)
	_, err = r.Render(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

// entry is one member of a hand-made archive.
type entry struct {
	name     string
	typeflag byte
	body     string
	link     string
}

func writeTgz(t *testing.T, entries []entry) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		if e.typeflag == 0 {
			e.typeflag = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: e.typeflag, Mode: 0o644, Linkname: e.link}
		if e.typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		require.NoError(t, tw.WriteHeader(h))
		if e.typeflag == tar.TypeReg {
			_, err := tw.Write([]byte(e.body))
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	p := filepath.Join(t.TempDir(), "chart.tgz")
	require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o600))
	return p
}

const chartYAML = "apiVersion: v2\nname: evil\nversion: 0.1.0\n"

func TestHostileArchives(t *testing.T) {
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
	for _, tc := range []struct {
		name    string
		entries []entry
		opts    []helm.Option
		want    error
		msg     string
	}{
		{"parent path", []entry{{name: "evil/Chart.yaml", body: chartYAML}, {name: "evil/../../etc/cron.d/x", body: "x"}},
			nil, helm.ErrUnsafeChart, `"evil/../../etc/cron.d/x" leaves the chart`},
		{"absolute", []entry{{name: "evil/Chart.yaml", body: chartYAML}, {name: "/etc/passwd", body: "x"}},
			nil, helm.ErrUnsafeChart, "absolute"},
		{"symlink", []entry{{name: "evil/Chart.yaml", body: chartYAML},
			{name: "evil/templates/x.yaml", typeflag: tar.TypeSymlink, link: "/etc/shadow"}},
			nil, helm.ErrUnsafeChart, `"evil/templates/x.yaml" is a link (to "/etc/shadow")`},
		{"hard link", []entry{{name: "evil/Chart.yaml", body: chartYAML},
			{name: "evil/templates/x.yaml", typeflag: tar.TypeLink, link: "evil/Chart.yaml"}},
			nil, helm.ErrUnsafeChart, "is a link"},
		{"device", []entry{{name: "evil/Chart.yaml", body: chartYAML},
			{name: "evil/templates/x.yaml", typeflag: tar.TypeChar}},
			nil, helm.ErrUnsafeChart, "not a regular file"},
		{"too many files", []entry{{name: "evil/Chart.yaml", body: chartYAML},
			{name: "evil/templates/a.yaml", body: cm}, {name: "evil/templates/b.yaml", body: cm}},
			[]helm.Option{helm.WithMaxFiles(2)}, helm.ErrTooLarge, "more than 2 files"},
		{"too large unpacked", []entry{{name: "evil/Chart.yaml", body: chartYAML},
			{name: "evil/templates/a.yaml", body: cm + strings.Repeat("#", 5000)}},
			[]helm.Option{helm.WithMaxChartSize(4096)}, helm.ErrTooLarge, "more than 4096 bytes unpacked"},
		{"too large archive", []entry{{name: "evil/Chart.yaml", body: chartYAML}},
			[]helm.Option{helm.WithMaxArchiveSize(20)}, helm.ErrTooLarge, "more than 20"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := helm.New(writeTgz(t, tc.entries), tc.opts...)
			require.NoError(t, err)
			_, err = r.Render(t.Context())
			require.ErrorIs(t, err, tc.want)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}

	// The same entries, safe, render: the checks refuse only what they should.
	p := writeTgz(t, []entry{{name: "evil/Chart.yaml", body: chartYAML}, {name: "evil/templates/a.yaml", body: cm}})
	assert.Equal(t, []string{"ConfigMap/x"}, refs(renderOK(t, p).Objects))

	r, err := helm.New(filepath.Join(t.TempDir()))
	require.NoError(t, err)
	_, err = r.Render(t.Context())
	require.Error(t, err, "an empty directory is no chart")

	notGzip := filepath.Join(t.TempDir(), "x.tgz")
	require.NoError(t, os.WriteFile(notGzip, []byte("apiVersion: v2"), 0o600))
	r, err = helm.New(notGzip)
	require.NoError(t, err)
	_, err = r.Render(t.Context())
	require.ErrorContains(t, err, "not a gzipped chart archive")
}

func TestSymlinkInDirectory(t *testing.T) {
	dir := copyChart(t)
	secret := filepath.Join(t.TempDir(), "secret.yaml")
	require.NoError(t, os.WriteFile(secret, []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: stolen}\n"), 0o600))
	require.NoError(t, os.Symlink(secret, filepath.Join(dir, "templates", "stolen.yaml")))
	r, err := helm.New(dir)
	require.NoError(t, err)
	_, err = r.Render(t.Context())
	require.ErrorIs(t, err, helm.ErrUnsafeChart)
	assert.Contains(t, err.Error(), "templates/stolen.yaml is a symbolic link")
}
