package kube

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/testbed"
)

func TestAssetsDir(t *testing.T) {
	const name = "k8s-" + KubernetesVersion + "-etcd-" + EtcdVersion + "-kwok-" + KwokVersion
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"KUBEBUILDER_ASSETS wins", map[string]string{"KUBEBUILDER_ASSETS": "/assets", "SHIPKIT_CACHE": "/c"}, "/assets"},
		{"SHIPKIT_CACHE", map[string]string{"SHIPKIT_CACHE": "/c", "XDG_CACHE_HOME": "/x"}, "/c/testbed/" + name},
		{"XDG_CACHE_HOME", map[string]string{"XDG_CACHE_HOME": "/x"}, "/x/shipkit/testbed/" + name},
		{"home", map[string]string{"HOME": "/h"}, "/h/.cache/shipkit/testbed/" + name},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"KUBEBUILDER_ASSETS", "SHIPKIT_CACHE", "XDG_CACHE_HOME"} {
				t.Setenv(k, "") // empty counts as unset, as in hack/testbed.sh
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			got, err := assetsDir()
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestLocateAssetsMissing(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KUBEBUILDER_ASSETS", dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etcd"), nil, 0o755))

	_, err := locateAssets()
	require.ErrorIs(t, err, testbed.ErrMissing)
	assert.ErrorContains(t, err, "kube-apiserver")
	assert.NotContains(t, err.Error(), "etcd,")
}

func TestCheckStagesRefusesGeneralVariant(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "kwok-stages"), 0o755))
	general := "selector:\n  matchExpressions:\n  - key: '.status.conditions.[] | select( .type == \"Initialized\" ) | .status'\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kwok-stages", "pod-ready.yaml"), []byte(general), 0o644))

	err := checkStages(assets{dir: dir})
	require.Error(t, err)
	assert.NotErrorIs(t, err, testbed.ErrMissing)
}

func TestNamespacePrefix(t *testing.T) {
	tests := map[string]string{
		"TestDeploy":             "testdeploy-",
		"TestDeploy/sub_test#01": "testdeploy-sub-test-01-",
		"///":                    "test-",
		"TestAVeryLongNameThatGoesOnAndOnAndOnForeverAndEver": "testaverylongnamethatgoesonandonandonfo-",
	}
	for in, want := range tests {
		got := namespacePrefix(in)
		assert.Equal(t, want, got, in)
		assert.LessOrEqual(t, len(got), 40, in)
	}
}

// TestVersionsMatchTheBuild keeps the versions in assets.go, in hack/testbed.sh
// (which names the cache directory and stamps the binaries) and in the nested
// module that builds the control plane in step: a drift would test against other
// binaries than the ones named.
func TestVersionsMatchTheBuild(t *testing.T) {
	script, err := os.ReadFile("../../../hack/testbed.sh")
	require.NoError(t, err)
	gomod, err := os.ReadFile("../../../hack/tools/kube/go.mod")
	require.NoError(t, err)
	for _, c := range []struct {
		name, version string
		script, gomod *regexp.Regexp
	}{
		{"Kubernetes", KubernetesVersion, regexp.MustCompile(`(?m)^K8S_VERSION=(\S+)$`), regexp.MustCompile(`(?m)^\s*k8s\.io/kubernetes (v\S+)`)},
		{"etcd", EtcdVersion, regexp.MustCompile(`(?m)^ETCD_VERSION=(\S+)$`), regexp.MustCompile(`(?m)^\s*go\.etcd\.io/etcd/server/v3 (v\S+)`)},
		{"kwok", KwokVersion, regexp.MustCompile(`(?m)^KWOK_VERSION=(\S+)$`), nil},
	} {
		m := c.script.FindSubmatch(script)
		require.NotNil(t, m, "%s version not found in hack/testbed.sh", c.name)
		assert.Equal(t, c.version, string(m[1]), "%s: assets.go and hack/testbed.sh differ", c.name)
		if c.gomod != nil {
			m := c.gomod.FindSubmatch(gomod)
			require.NotNil(t, m, "%s not found in hack/tools/kube/go.mod", c.name)
			assert.Equal(t, c.version, string(m[1]), "%s: assets.go and hack/tools/kube/go.mod differ", c.name)
		}
	}
}

func TestWithImageIDsNeedsTheImageLine(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src", "pod-ready.yaml")
	require.NoError(t, os.Mkdir(filepath.Dir(src), 0o755))
	require.NoError(t, os.WriteFile(src, []byte("spec: {}\n"), 0o644))
	_, err := withImageIDs(src, dir)
	require.ErrorContains(t, err, "no line")

	require.NoError(t, os.WriteFile(src, []byte("containerStatuses:\n"+containerImageLine+"        name: x\n"), 0o644))
	out, err := withImageIDs(src, dir)
	require.NoError(t, err)
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, "containerStatuses:\n"+containerImageLine+imageIDLines+"        name: x\n", string(data))
}
