package kube

import (
	"os"
	"path/filepath"
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
