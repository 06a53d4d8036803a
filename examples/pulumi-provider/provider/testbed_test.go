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

// The test bed of the engine test: the Pulumi CLI and Pulumi YAML's language host
// built by hack/tools/pulumi/install.sh, go-containerregistry's registry in process,
// and etcd + kube-apiserver started by envtest from $KUBEBUILDER_ASSETS
// (hack/testbed.sh builds them). Locally a missing part skips the test; with
// CI=true it fails it.

// PulumiVersion is the Pulumi CLI the tests run: hack/tools/pulumi/install.sh builds
// it, with pulumi-language-yaml beside it, into
// ${SHIPKIT_CACHE:-~/.cache/shipkit}/tools/pulumi-VERSION/.
const PulumiVersion = "v3.276.0"

// missing fails the test in CI and skips it elsewhere.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("test bed incomplete (CI=true, so this fails rather than skips): %s", msg)
	}
	t.Skipf("test bed incomplete: %s", msg)
}

// pulumiDir returns the directory holding pulumi and pulumi-language-yaml:
// $SHIPKIT_PULUMI_DIR, or the one hack/tools/pulumi/install.sh fills.
func pulumiDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SHIPKIT_PULUMI_DIR")
	if dir == "" {
		cache := os.Getenv("SHIPKIT_CACHE")
		if cache == "" {
			base, err := os.UserCacheDir()
			require.NoError(t, err)
			cache = filepath.Join(base, "shipkit")
		}
		dir = filepath.Join(cache, "tools", "pulumi-"+PulumiVersion)
	}
	for _, bin := range []string{"pulumi", "pulumi-language-yaml"} {
		if fi, err := os.Stat(filepath.Join(dir, bin)); err != nil || fi.Mode()&0o111 == 0 {
			missing(t, "no %s in %s (run hack/tools/pulumi/install.sh or set SHIPKIT_PULUMI_DIR)", bin, dir)
		}
	}
	out, err := exec.Command(filepath.Join(dir, "pulumi"), "version").Output()
	require.NoError(t, err, "pulumi version")
	require.Equal(t, PulumiVersion, strings.TrimSpace(string(out)), "%s/pulumi is not the Pulumi the tests expect", dir)
	return dir
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
	user, err := env.AddUser(envtest.User{Name: "pulumi", Groups: []string{"system:masters"}}, nil)
	require.NoError(t, err)
	kc, err := user.KubeConfig()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(path, kc, 0o600))
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return &cluster{kubeconfig: path, client: client}
}
