package kube

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/shipkit/shipkit/internal/testbed"
)

// Versions of the control plane that hack/testbed.sh builds. They name the directory the
// binaries are cached in, so they must match K8S_VERSION, ETCD_VERSION and KWOK_VERSION in
// hack/testbed.sh: change both together.
const (
	// KubernetesVersion is the version of kube-apiserver, kube-controller-manager and kube-scheduler.
	KubernetesVersion = "v1.34.4"
	// EtcdVersion is the version of etcd.
	EtcdVersion = "v3.6.4"
	// KwokVersion is the version of kwok, which plays the kubelet of the fake nodes.
	KwokVersion = "v0.8.0"
)

// assetsEnv names a directory that holds the binaries, as for controller-runtime's envtest.
const assetsEnv = "KUBEBUILDER_ASSETS"

// binaries and kwok stage files the test bed needs from the assets directory.
var (
	binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
	stages   = []string{"node-initialize", "node-heartbeat-with-lease", "pod-ready", "pod-complete", "pod-delete"}
)

// assets are the located binaries and kwok stage files.
type assets struct {
	dir    string
	stages []string // paths of the kwok stage files
}

// bin returns the path of the named binary.
func (a assets) bin(name string) string { return filepath.Join(a.dir, name) }

// assetsDir returns the directory to take the binaries from: $KUBEBUILDER_ASSETS if set,
// else the directory hack/testbed.sh builds into,
// ${SHIPKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shipkit}/testbed/k8s-…-etcd-…-kwok-….
func assetsDir() (string, error) {
	if dir := os.Getenv(assetsEnv); dir != "" {
		return dir, nil
	}
	cache := os.Getenv("SHIPKIT_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("locate the test bed cache: %w", err)
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "shipkit")
	}
	name := fmt.Sprintf("k8s-%s-etcd-%s-kwok-%s", KubernetesVersion, EtcdVersion, KwokVersion)
	return filepath.Join(cache, "testbed", name), nil
}

// locateAssets finds the binaries and stage files; what is missing is reported with an
// error that wraps testbed.ErrMissing.
func locateAssets() (assets, error) {
	dir, err := assetsDir()
	if err != nil {
		return assets{}, err
	}
	if _, err := os.Stat(dir); err != nil {
		return assets{}, testbed.Missingf("kube: no binaries: %v (set %s or run hack/testbed.sh)", err, assetsEnv)
	}
	a := assets{dir: dir}
	var missing []string
	for _, b := range binaries {
		if fi, err := os.Stat(a.bin(b)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	for _, s := range stages {
		p := filepath.Join(dir, "kwok-stages", s+".yaml")
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, "kwok-stages/"+s+".yaml")
		}
		a.stages = append(a.stages, p)
	}
	if len(missing) > 0 {
		return assets{}, testbed.Missingf("kube: %s not in %s (set %s to a directory that has them or run hack/testbed.sh)",
			strings.Join(missing, ", "), dir, assetsEnv)
	}
	return a, checkStages(a)
}

// checkStages refuses kwok's "general" pod stages. kwok ships pod-ready.yaml in two
// variants; the general one waits for an Initialized condition that only its
// pod-create.yaml sets, which the test bed does not install, so pods would stay Pending.
func checkStages(a assets) error {
	p := filepath.Join(a.dir, "kwok-stages", "pod-ready.yaml")
	data, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("kube: read kwok stage: %w", err)
	}
	if bytes.Contains(data, []byte(`select( .type == "Initialized" )`)) {
		return fmt.Errorf("kube: %s is kwok's general pod-ready stage, which needs pod-create.yaml; "+
			"copy kustomize/stage/pod/fast/*.yaml from sigs.k8s.io/kwok@%s instead", p, KwokVersion)
	}
	return nil
}
