package provider_test

import (
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// The test bed of the acceptance tests: OpenTofu built by hack/tools/tofu/install.sh,
// go-containerregistry's registry in process, and etcd + kube-apiserver started by
// envtest from $KUBEBUILDER_ASSETS (hack/testbed.sh builds them). Locally a missing
// part skips the test; with CI=true it fails it.

// TofuVersion is the OpenTofu the tests run: hack/tools/tofu/install.sh builds it
// into ${SHIPKIT_CACHE:-~/.cache/shipkit}/tools/tofu-VERSION/tofu.
const TofuVersion = "v1.10.10"

// missing fails the test in CI and skips it elsewhere.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("test bed incomplete (CI=true, so this fails rather than skips): %s", msg)
	}
	t.Skipf("test bed incomplete: %s", msg)
}

// tofu returns the OpenTofu binary: $TF_ACC_TERRAFORM_PATH, or the one
// hack/tools/tofu/install.sh caches.
func tofu(t *testing.T) string {
	t.Helper()
	p := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if p == "" {
		cache := os.Getenv("SHIPKIT_CACHE")
		if cache == "" {
			base, err := os.UserCacheDir()
			require.NoError(t, err)
			cache = filepath.Join(base, "shipkit")
		}
		p = filepath.Join(cache, "tools", "tofu-"+TofuVersion, "tofu")
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
		missing(t, "no OpenTofu binary at %s (run hack/tools/tofu/install.sh or set TF_ACC_TERRAFORM_PATH)", p)
	}
	out, err := exec.Command(p, "version").Output()
	require.NoError(t, err, "%s version", p)
	require.Contains(t, string(out), "OpenTofu v"+strings.TrimPrefix(TofuVersion, "v"), "%s is not the OpenTofu the tests expect", p)
	return p
}

// accEnv points terraform-plugin-testing at OpenTofu and the in-process provider.
func accEnv(t *testing.T) {
	t.Helper()
	t.Setenv("TF_ACC", "1") // the test bed is local and cleaned up: nothing to opt into
	t.Setenv("TF_ACC_TERRAFORM_PATH", tofu(t))
	// OpenTofu resolves a provider without a source in its own registry: the
	// in-process provider must be registered under that address.
	if os.Getenv("TF_ACC_PROVIDER_HOST") == "" {
		t.Setenv("TF_ACC_PROVIDER_HOST", "registry.opentofu.org")
	}
	// Keep the machine's CLI configuration (mirrors, credentials) out of the test.
	cli := filepath.Join(t.TempDir(), "tofurc")
	require.NoError(t, os.WriteFile(cli, nil, 0o600))
	t.Setenv("TF_CLI_CONFIG_FILE", cli)
	t.Setenv("TF_IN_AUTOMATION", "1")
}

// startRegistry serves an in-memory registry on 127.0.0.1 and returns its host.
func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// cluster is a running kube-apiserver with etcd.
type cluster struct {
	kubeconfig string
	client     kubernetes.Interface
}

// startCluster starts etcd and kube-apiserver with envtest. Without a controller
// manager, Deployments get no pods; that is all these tests need.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		missing(t, "KUBEBUILDER_ASSETS is not set (run hack/testbed.sh, which prints the directory)")
	}
	for _, bin := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			missing(t, "%s is not in KUBEBUILDER_ASSETS=%s (run hack/testbed.sh)", bin, assets)
		}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	cfg, err := env.Start()
	require.NoError(t, err, "start etcd and kube-apiserver")
	t.Cleanup(func() { _ = env.Stop() })
	user, err := env.AddUser(envtest.User{Name: "terraform", Groups: []string{"system:masters"}}, nil)
	require.NoError(t, err)
	kc, err := user.KubeConfig()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(path, kc, 0o600))
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return &cluster{kubeconfig: path, client: client}
}
