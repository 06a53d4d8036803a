package provider_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/sign/cosign"
)

const namespace = "shop"

// app writes the service's source: a main package that prints greeting.
func app(t *testing.T, dir, greeting string) {
	t.Helper()
	write(t, dir, "go.mod", "module example.com/web\n\ngo 1.26\n")
	write(t, dir, "main.go", fmt.Sprintf("package main\n\nfunc main() { println(%q) }\n", greeting))
}

// manifests writes the kustomization: a Deployment of the registry's web image with
// replicas, a Secret web holding password, and a ConfigMap when extra is set.
func manifests(t *testing.T, dir, registry string, replicas int, extra bool, password string) {
	t.Helper()
	resources := "- deployment.yaml\n"
	if extra {
		resources += "- extra.yaml\n"
		write(t, dir, "extra.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  greeting: hello\n")
	}
	write(t, dir, "kustomization.yaml", "resources:\n"+resources+
		"secretGenerator:\n- name: web\n  literals: [password="+password+"]\n"+
		"generatorOptions:\n  disableNameSuffixHash: true\n")
	write(t, dir, "deployment.yaml", fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: %d
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: %s/web:latest
`, replicas, registry))
}

func write(t *testing.T, dir, file, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644))
}

// program is the Pulumi YAML program of the test (the README shows the same): the
// image, signed, and a release of it, gated on a signature by the key pub.
func program(pluginDir, registry, src, kdir, keyFile, pub string, force bool) string {
	quoted, _ := json.Marshal(pub)
	return fmt.Sprintf(`name: web
runtime: yaml
description: shipkit's Pulumi provider example under the real engine
plugins:
  providers:
    - name: shipkit
      path: %[1]s
resources:
  image:
    type: shipkit:index:Image
    properties:
      sourceDir: %[3]s
      repository: %[2]s/web
      sign:
        keyFile: %[5]s
  release:
    type: shipkit:index:Release
    properties:
      name: web
      namespace: %[7]s
      kustomizeDir: %[4]s
      images:
        - ${image.image}
      forceConflicts: %[8]t
      gate:
        publicKeys:
          - %[6]s
        insecureRegistries:
          - %[2]s
outputs:
  image: ${image.image}
  digest: ${image.digest}
  signedBy: ${image.signedBy}
  objects: ${release.objects}
  secretObjects: ${release.secretObjects}
`, pluginDir, registry, src, kdir, keyFile, quoted, namespace, force)
}

// engine runs the Pulumi CLI in a project directory with a file backend and a
// passphrase secrets provider; every output is kept, to check that no secret shows.
type engine struct {
	t        *testing.T
	pulumi   string
	dir      string
	env      []string
	password []string // strings no output may contain
	outputs  bytes.Buffer
}

func (e *engine) run(args ...string) (string, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.pulumi, args...)
	cmd.Dir = e.dir
	cmd.Env = e.env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	e.t.Logf("pulumi %s (%s):\n%s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), out)
	e.outputs.Write(out)
	for _, p := range e.password {
		require.NotContains(e.t, string(out), p, "pulumi %s printed a Secret's value", strings.Join(args, " "))
	}
	return string(out), err
}

func (e *engine) must(args ...string) string {
	e.t.Helper()
	out, err := e.run(args...)
	require.NoError(e.t, err, "pulumi %s", strings.Join(args, " "))
	return out
}

// stackOutputs returns the stack's outputs, secrets in plain text.
func (e *engine) stackOutputs() map[string]any {
	e.t.Helper()
	cmd := exec.CommandContext(e.t.Context(), e.pulumi, "stack", "output", "--json", "--show-secrets")
	cmd.Dir, cmd.Env = e.dir, e.env
	out, err := cmd.Output()
	require.NoError(e.t, err, "pulumi stack output")
	var m map[string]any
	require.NoError(e.t, json.Unmarshal(out, &m))
	return m
}

// TestEngine walks one service through its life with the Pulumi CLI and Pulumi
// YAML: a preview of the create; up builds, pushes and signs the image and applies
// the release pinned to its digest; a preview after up shows no change; a source
// change rebuilds; an overlay change shows as an update of the release (the Secret's
// new value redacted) and prunes the dropped object; a change made in the cluster
// shows after refresh; destroy prunes everything. The state keeps the Secret's
// objects as a secret.
func TestEngine(t *testing.T) {
	pdir := pulumiDir(t)
	registry := startRegistry(t)
	k := startCluster(t)
	ctx := t.Context()
	_, err := k.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	require.NoError(t, err)

	dir := t.TempDir()
	src, kdir, project, bin := filepath.Join(dir, "src"), filepath.Join(dir, "deploy"), filepath.Join(dir, "project"), filepath.Join(dir, "bin")
	// The provider binary, built from this module as the engine would find it.
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, "pulumi-resource-shipkit"), "github.com/shipkit/shipkit/examples/pulumi-provider")
	built, err := build.CombinedOutput()
	require.NoError(t, err, "build the provider: %s", built)

	kp, err := cosign.GenerateKeyPair([]byte("test-password"))
	require.NoError(t, err)
	keys := filepath.Join(dir, "keys")
	require.NoError(t, os.MkdirAll(keys, 0o700))
	_, _, err = kp.WriteFiles(keys)
	require.NoError(t, err)
	pub, err := os.ReadFile(filepath.Join(keys, cosign.PublicKeyFile))
	require.NoError(t, err)
	writeProgram := func(force bool) {
		write(t, project, "Pulumi.yaml", program(bin, registry, src, kdir, filepath.Join(keys, cosign.PrivateKeyFile), string(pub), force))
	}

	home, state := filepath.Join(dir, "pulumi-home"), filepath.Join(dir, "state")
	require.NoError(t, os.MkdirAll(state, 0o700)) // the file backend wants it there
	e := &engine{t: t, pulumi: filepath.Join(pdir, "pulumi"), dir: project, password: []string{"s3cr3t-1", "s3cr3t-2"}}
	e.env = append(os.Environ(),
		"PATH="+pdir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"PULUMI_HOME="+home,
		"PULUMI_BACKEND_URL=file://"+state,
		"PULUMI_CONFIG_PASSPHRASE=test-passphrase",
		"PULUMI_SKIP_UPDATE_CHECK=true",
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true",
		"PULUMI_SKIP_CONFIRMATIONS=true",
		"NO_COLOR=1",
		"KUBECONFIG="+k.kubeconfig,
		"COSIGN_PASSWORD=test-password",
	)

	app(t, src, "hello")
	manifests(t, kdir, registry, 1, true, "s3cr3t-1")
	writeProgram(false)
	e.must("stack", "init", "dev", "--non-interactive")

	// Create: the preview plans both; up builds, pushes, signs, gates and applies.
	out := e.must("preview", "--non-interactive", "--diff")
	require.Regexp(t, `\+ .*shipkit:index:Image`, out)
	require.Regexp(t, `\+ .*shipkit:index:Release`, out)
	_, err = k.client.AppsV1().Deployments(namespace).Get(ctx, "web", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "a preview applies nothing: %v", err)
	e.must("up", "--yes", "--non-interactive", "--skip-preview")
	outs := e.stackOutputs()
	first, _ := outs["image"].(string)
	require.Regexp(t, `^`+regexp.QuoteMeta(registry)+`/web@sha256:[0-9a-f]{64}$`, first)
	require.Regexp(t, `^sha256:[0-9a-f]{16}$`, outs["signedBy"])
	objects, _ := outs["objects"].(map[string]any)
	require.Contains(t, objects, "Deployment/web")
	require.Contains(t, objects, "ConfigMap/extra")
	require.NotContains(t, objects, "Secret/web", "the Secret is in secretObjects only")
	secrets, _ := outs["secretObjects"].(map[string]any)
	require.Contains(t, secrets, "Secret/web")
	k.checkDeployment(t, first, 1)
	k.checkSecret(t, "s3cr3t-1")
	k.checkConfigMap(t, "extra", true)
	checkInRegistry(t, first)

	// The state keeps the Secret encrypted: an export shows no password.
	export := e.must("stack", "export")
	require.Contains(t, export, "4dabf18193072939515e22adb298388d", "the state marks secretObjects secret")
	require.NotContains(t, export, "s3cr3t-1")

	// Nothing changed: the preview after up shows no change.
	e.must("preview", "--non-interactive", "--expect-no-changes")

	// A Go file changes: the image is rebuilt to a new digest and the Deployment rolls.
	app(t, src, "hello again")
	out = e.must("preview", "--non-interactive")
	require.Regexp(t, `~ .*shipkit:index:Image.*update`, out)
	e.must("up", "--yes", "--non-interactive", "--skip-preview")
	second, _ := e.stackOutputs()["image"].(string)
	require.NotEqual(t, first, second, "a source change builds a new digest")
	k.checkDeployment(t, second, 1)

	// The overlay changes (replicas, a dropped ConfigMap, a new password): the
	// preview shows the release updated, never the password; up prunes the ConfigMap.
	manifests(t, kdir, registry, 2, false, "s3cr3t-2")
	out = e.must("preview", "--non-interactive")
	require.Regexp(t, `~ .*shipkit:index:Release.*update`, out)
	require.NotRegexp(t, `~ .*shipkit:index:Image.*update`, out)
	e.must("preview", "--non-interactive", "--diff", "--show-sames") // run() checks no password shows
	e.must("up", "--yes", "--non-interactive", "--skip-preview")
	k.checkDeployment(t, second, 2)
	k.checkSecret(t, "s3cr3t-2")
	k.checkConfigMap(t, "extra", false)
	e.must("preview", "--non-interactive", "--expect-no-changes")

	// Drift: scaled by another manager, the change shows after refresh; up takes it
	// back with forceConflicts.
	k.scale(t, 5)
	e.must("refresh", "--yes", "--non-interactive", "--skip-preview")
	out, err = e.run("preview", "--non-interactive", "--diff", "--expect-no-changes")
	require.Error(t, err, "after refresh, the preview shows the drift")
	require.Regexp(t, `~ .*shipkit:index:Release.*update`, out)
	writeProgram(true)
	e.must("up", "--yes", "--non-interactive", "--skip-preview")
	k.checkDeployment(t, second, 2)

	// Destroy prunes every object and the ApplySet parent; the registry keeps the image.
	e.must("destroy", "--yes", "--non-interactive", "--skip-preview")
	_, err = k.client.AppsV1().Deployments(namespace).Get(ctx, "web", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "after destroy, Deployment web: %v", err)
	_, err = k.client.CoreV1().Secrets(namespace).Get(ctx, "web", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "after destroy, Secret web: %v", err)
	_, err = k.client.CoreV1().ConfigMaps(namespace).Get(ctx, "shipkit-release-web", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "after destroy, the ApplySet parent: %v", err)
	checkInRegistry(t, second)
}

// checkDeployment checks that the cluster runs image with replicas.
func (k *cluster) checkDeployment(t *testing.T, image string, replicas int32) {
	t.Helper()
	d, err := k.client.AppsV1().Deployments(namespace).Get(t.Context(), "web", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, image, d.Spec.Template.Spec.Containers[0].Image, "the Deployment runs the image by digest")
	require.Equal(t, replicas, *d.Spec.Replicas)
}

func (k *cluster) checkConfigMap(t *testing.T, name string, exists bool) {
	t.Helper()
	_, err := k.client.CoreV1().ConfigMaps(namespace).Get(t.Context(), name, metav1.GetOptions{})
	if exists {
		require.NoError(t, err, "ConfigMap %s", name)
	} else {
		require.True(t, apierrors.IsNotFound(err), "ConfigMap %s: want it pruned, got %v", name, err)
	}
}

// checkSecret checks the password in the Secret the release applied.
func (k *cluster) checkSecret(t *testing.T, password string) {
	t.Helper()
	s, err := k.client.CoreV1().Secrets(namespace).Get(t.Context(), "web", metav1.GetOptions{})
	require.NoError(t, err, "Secret web")
	require.True(t, string(s.Data["password"]) == password, "Secret web has another password than the manifests")
}

// scale changes the Deployment's replicas as kubectl scale would, under another
// field manager.
func (k *cluster) scale(t *testing.T, replicas int32) {
	t.Helper()
	d, err := k.client.AppsV1().Deployments(namespace).Get(t.Context(), "web", metav1.GetOptions{})
	require.NoError(t, err)
	d.Spec.Replicas = &replicas
	_, err = k.client.AppsV1().Deployments(namespace).Update(t.Context(), d, metav1.UpdateOptions{FieldManager: "kubectl-scale"})
	require.NoError(t, err)
}

// checkInRegistry checks that the registry serves the image index by digest.
func checkInRegistry(t *testing.T, image string) {
	t.Helper()
	ref, err := name.NewDigest(image)
	require.NoError(t, err)
	desc, err := remote.Head(ref)
	require.NoError(t, err, "registry")
	require.Equal(t, ref.DigestStr(), desc.Digest.String())
	require.True(t, desc.MediaType.IsIndex(), "the registry serves the index")
}
