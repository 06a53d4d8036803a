package provider

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const twoContexts = `apiVersion: v1
kind: Config
clusters:
- name: dev
  cluster: {server: "https://127.0.0.1:6443"}
- name: prod
  cluster: {server: "https://127.0.0.1:7443"}
users:
- name: me
  user: {token: s3cr3t-token}
contexts:
- name: dev
  context: {cluster: dev, user: me}
- name: prod
  context: {cluster: prod, user: me}
current-context: dev
`

func TestKubeConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(file, []byte(twoContexts), 0o600))
	tests := []struct {
		name string
		cfg  kubeConfig
		host string
	}{
		{"file, current context", kubeConfig{path: file}, "https://127.0.0.1:6443"},
		{"file, other context", kubeConfig{path: file, context: "prod"}, "https://127.0.0.1:7443"},
		{"inline", kubeConfig{raw: twoContexts}, "https://127.0.0.1:6443"},
		{"inline, other context", kubeConfig{raw: twoContexts, context: "prod"}, "https://127.0.0.1:7443"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.cfg.restConfig()
			require.NoError(t, err)
			assert.Equal(t, tt.host, cfg.Host)
			assert.Equal(t, "s3cr3t-token", cfg.BearerToken)
		})
	}
}

func TestKubeConfigErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(file, []byte(twoContexts), 0o600))
	tests := []struct {
		name string
		cfg  kubeConfig
		want string
	}{
		{"missing file", kubeConfig{path: filepath.Join(t.TempDir(), "none")}, "kubernetes.config_path"},
		{"unknown context", kubeConfig{path: file, context: "staging"}, "staging"},
		{"inline garbage", kubeConfig{raw: "users: [{user: {token: s3cr3t-token}}]: ["}, "kubernetes.config_raw"},
		{"unknown until apply", kubeConfig{unknown: true}, "not known until apply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.restConfig()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "s3cr3t", "an error never shows a credential")
		})
	}
}

func TestExpandHome(t *testing.T) {
	home, err := os.UserHomeDir()
	require.NoError(t, err)
	got, err := expandHome("~/.kube/config")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(home, ".kube/config"), got)
	got, err = expandHome("/etc/kubeconfig")
	require.NoError(t, err)
	assert.Equal(t, "/etc/kubeconfig", got)
}
