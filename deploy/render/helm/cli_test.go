package helm_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	helmregistry "helm.sh/helm/v4/pkg/registry"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/deploy/render/helm"
	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/registry"
)

// helmVersion is the version of helm.sh/helm/v4 in go.mod, of which hack/testbed.sh
// builds the CLI.
const helmVersion = "v4.3.2"

// helmCLI returns the path of the Helm CLI that hack/testbed.sh builds.
func helmCLI(t *testing.T) string {
	t.Helper()
	bin := testbed.ToolPath("helm", helmVersion)
	if _, err := os.Stat(bin); err != nil {
		testbed.Check(t, testbed.Missingf("helm CLI %s not at %s (go build -o %s helm.sh/helm/v4/cmd/helm in the repository)", helmVersion, bin, bin))
	}
	return bin
}

// helmTemplate runs `helm template args...` with a home of its own and returns
// the objects it prints, through the same parsing as the package's.
func helmTemplate(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	home := t.TempDir()
	cmd := exec.CommandContext(t.Context(), helmCLI(t), append([]string{"template"}, args...)...)
	cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin", "HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"), "HELM_DATA_HOME=" + filepath.Join(home, "data"),
		"KUBECONFIG=" + filepath.Join(home, "no-kubeconfig")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "helm template %v: %s", args, stderr.String())
	objs, err := render.Parse("helm template", out)
	require.NoError(t, err)
	for _, o := range objs {
		b, err := o.MarshalJSON()
		require.NoError(t, err)
		require.NoError(t, o.UnmarshalJSON(b)) // whole numbers int64, as the package's
	}
	return objs
}

// assertSameObjects checks that got and want are the same objects in the same order.
func assertSameObjects(t *testing.T, want, got []*unstructured.Unstructured) {
	t.Helper()
	require.Equal(t, refs(want), refs(got), "same objects, same order")
	for i := range want {
		w, err := json.Marshal(want[i].Object)
		require.NoError(t, err)
		g, err := json.Marshal(got[i].Object)
		require.NoError(t, err)
		assert.JSONEq(t, string(w), string(g), "%s", refs(want)[i])
	}
}

// packageChart writes dir as a chart archive, as helm package does, and returns its path.
func packageChart(t *testing.T, dir string) string {
	t.Helper()
	ch, err := loader.LoadDir(dir)
	require.NoError(t, err)
	p, err := chartutil.Save(ch, t.TempDir())
	require.NoError(t, err)
	return p
}

func TestSameAsHelmTemplate(t *testing.T) {
	dir := t.TempDir()
	valuesA := filepath.Join(dir, "a.yaml")
	valuesB := filepath.Join(dir, "b.yaml")
	require.NoError(t, os.WriteFile(valuesA, []byte("replicaCount: 5\nimage: {tag: \"2.0\"}\n"), 0o600))
	require.NoError(t, os.WriteFile(valuesB, []byte("replicaCount: 6\ncache: {enabled: false}\n"), 0o600))
	tgz := packageChart(t, "testdata/shop")

	for _, tc := range []struct {
		name   string
		source string
		opts   []helm.Option
		args   []string
	}{
		{"directory", "testdata/shop", []helm.Option{helm.WithReleaseName("web"), helm.WithNamespace("store")},
			[]string{"web", "testdata/shop", "--namespace", "store"}},
		{"defaults", "testdata/shop", nil, []string{"shop", "testdata/shop"}},
		{"values and capabilities", "testdata/shop", []helm.Option{
			helm.WithValuesFiles(valuesA, valuesB), helm.WithSet("replicaCount=7,service.port=9000"),
			helm.WithAPIVersions("monitoring.coreos.com/v1/ServiceMonitor"), helm.WithKubeVersion("v1.31.4"),
		}, []string{"shop", "testdata/shop", "-f", valuesA, "-f", valuesB, "--set", "replicaCount=7,service.port=9000",
			"--api-versions", "monitoring.coreos.com/v1/ServiceMonitor", "--kube-version", "v1.31.4"}},
		{"archive", tgz, []helm.Option{helm.WithReleaseName("web")}, []string{"web", tgz}},
		{"hooks dropped", "testdata/hooked", []helm.Option{helm.WithoutHooks()},
			[]string{"hooked", "testdata/hooked", "--no-hooks"}},
		{"v1 chart", "testdata/legacy", []helm.Option{helm.WithReleaseName("web"), helm.WithNamespace("store")},
			[]string{"web", "testdata/legacy", "--namespace", "store"}},
		{"v1 chart, dependency off", "testdata/legacy", []helm.Option{helm.WithSet("cache.enabled=false")},
			[]string{"legacy", "testdata/legacy", "--set", "cache.enabled=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := helmTemplate(t, append(tc.args, "--include-crds", "--skip-tests")...)
			assertSameObjects(t, want, renderOK(t, tc.source, tc.opts...).Objects)
		})
	}
}

func TestOCIChart(t *testing.T) {
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)

	// Push as Helm pushes (its SDK's registry client, the code under helm push).
	data, err := os.ReadFile(packageChart(t, "testdata/shop"))
	require.NoError(t, err)
	client, err := helmregistry.NewClient(helmregistry.ClientOptPlainHTTP(),
		helmregistry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "config.json")))
	require.NoError(t, err)
	pushed, err := client.Push(data, host+"/charts/shop:0.1.0")
	require.NoError(t, err)

	byTag := renderOK(t, "oci://"+host+"/charts/shop:0.1.0", helm.WithReleaseName("web"))
	assert.Equal(t, host+"/charts/shop@"+pushed.Manifest.Digest, byTag.Digest.String(), "resolved and recorded by digest")
	byDigest := renderOK(t, "oci://"+byTag.Digest.String(), helm.WithReleaseName("web"))
	assert.Equal(t, byTag.Digest, byDigest.Digest)
	assertSameObjects(t, byTag.Objects, byDigest.Objects)
	assertSameObjects(t, renderOK(t, "testdata/shop", helm.WithReleaseName("web")).Objects, byTag.Objects)

	t.Run("helm template", func(t *testing.T) {
		want := helmTemplate(t, "web", "oci://"+host+"/charts/shop", "--version", "0.1.0", "--plain-http",
			"--include-crds", "--skip-tests")
		assertSameObjects(t, want, byTag.Objects)
	})

	t.Run("bounded", func(t *testing.T) {
		r, err := helm.New("oci://"+byTag.Digest.String(), helm.WithMaxArchiveSize(100))
		require.NoError(t, err)
		_, err = r.Render(t.Context())
		require.ErrorIs(t, err, helm.ErrTooLarge)
		assert.Contains(t, err.Error(), pushed.Manifest.Digest)
	})

	t.Run("not a chart", func(t *testing.T) {
		img, err := random.Image(64, 1)
		require.NoError(t, err)
		ref, err := name.ParseReference(host + "/charts/app:1")
		require.NoError(t, err)
		require.NoError(t, remote.Write(ref, img))
		r, err := helm.New("oci://" + ref.String())
		require.NoError(t, err)
		_, err = r.Render(t.Context())
		require.ErrorContains(t, err, "not a Helm chart")
	})

	t.Run("missing", func(t *testing.T) {
		r, err := helm.New("oci://" + host + "/charts/shop:9.9.9")
		require.NoError(t, err)
		_, err = r.Render(t.Context())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "charts/shop:9.9.9")
	})
}
