package provider_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6/tf6server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/examples/terraform-provider/provider"
)

// providerAddress is where the test's configuration requires the provider from.
const providerAddress = "registry.opentofu.org/shipkit/shipkit"

// serveProvider serves the provider in process for the CLI, as a debugger would,
// and returns the TF_REATTACH_PROVIDERS value that points the CLI at it.
func serveProvider(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	reattach, closed := make(chan *plugin.ReattachConfig, 1), make(chan struct{})
	serveErr := make(chan error, 1)
	go func() {
		serveErr <- tf6server.Serve(providerAddress, providerserver.NewProtocol6(provider.New("test")()),
			tf6server.WithDebug(ctx, reattach, closed),
			tf6server.WithGoPluginLogger(hclog.New(&hclog.LoggerOptions{Output: io.Discard})),
			tf6server.WithLoggingSink(t))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Error("the provider server did not stop")
		}
	})
	var cfg *plugin.ReattachConfig
	select {
	case cfg = <-reattach:
	case err := <-serveErr:
		t.Fatalf("serve the provider: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the provider server did not start")
	}
	b, err := json.Marshal(map[string]any{providerAddress: map[string]any{
		"Protocol": cfg.Protocol, "ProtocolVersion": cfg.ProtocolVersion, "Pid": cfg.Pid, "Test": true,
		"Addr": map[string]string{"Network": cfg.Addr.Network(), "String": cfg.Addr.String()},
	}})
	require.NoError(t, err)
	return string(b)
}

// TestPlanOutput runs the OpenTofu CLI as a person would and reads its plan: a
// change to the manifests and a change made in the cluster both show as line diffs
// of the Deployment's YAML.
func TestPlanOutput(t *testing.T) {
	bin := tofu(t)
	k := startCluster(t)
	ctx := t.Context()
	_, err := k.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	require.NoError(t, err)

	dir := t.TempDir()
	work, kdir := filepath.Join(dir, "work"), filepath.Join(dir, "deploy")
	manifests(t, kdir, "registry.example", 1, false, "p4ssw0rd-1")
	write(t, work, "main.tf", fmt.Sprintf(`
terraform {
  required_providers {
    shipkit = { source = "shipkit/shipkit" }
  }
}

provider "shipkit" {
  kubernetes = { config_path = %q }
}

resource "shipkit_release" "web" {
  name          = "web"
  namespace     = %q
  kustomize_dir = %q
  images        = ["registry.example/web@sha256:%064d"]
}
`, k.kubeconfig, namespace, kdir, 1))
	cli := filepath.Join(dir, "tofurc")
	write(t, dir, "tofurc", "")
	env := append(os.Environ(), "TF_REATTACH_PROVIDERS="+serveProvider(t), "TF_CLI_CONFIG_FILE="+cli,
		"TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1", "TF_LOG=")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, append(args[:1:1], append([]string{"-no-color"}, args[1:]...)...)...)
		cmd.Dir, cmd.Env = work, env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(t, cmd.Run(), "tofu %v:\n%s", args, out.String())
		return out.String()
	}

	run("init", "-input=false")
	run("apply", "-input=false", "-auto-approve")

	manifests(t, kdir, "registry.example", 2, false, "p4ssw0rd-2")
	plan := run("plan", "-input=false")
	t.Logf("tofu plan after a change to the manifests:\n%s", plan)
	assert.Contains(t, plan, `~ resource "shipkit_release" "web"`)
	assert.Regexp(t, regexp.MustCompile(`(?m)^\s+-\s+replicas: 1$`), plan)
	assert.Regexp(t, regexp.MustCompile(`(?m)^\s+\+\s+replicas: 2$`), plan)
	assert.Contains(t, plan, "1 to change")
	assert.Regexp(t, regexp.MustCompile(`~ secret_objects\s+= \(sensitive value\)`), plan, "a Secret's change shows, not its data")
	for _, secret := range []string{"p4ssw0rd", "cDRzc3cwcmQt"} { // the password, plain and base64
		assert.NotContains(t, plan, secret)
	}

	manifests(t, kdir, "registry.example", 1, false, "p4ssw0rd-2")
	k.scale(t, 5)
	plan = run("plan", "-input=false")
	t.Logf("tofu plan after kubectl scale:\n%s", plan)
	assert.Regexp(t, regexp.MustCompile(`(?m)^\s+-\s+replicas: 5$`), plan)
	assert.Regexp(t, regexp.MustCompile(`(?m)^\s+\+\s+replicas: 1$`), plan)
	assert.Contains(t, plan, "Deployment/shop/web has fields another manager changed")
	assert.Contains(t, plan, `.spec.replicas (owned by "kubectl-scale")`)

	run("destroy", "-input=false", "-auto-approve")
	_, err = k.client.AppsV1().Deployments(namespace).Get(ctx, "web", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "destroy prunes the Deployment: %v", err)
}
