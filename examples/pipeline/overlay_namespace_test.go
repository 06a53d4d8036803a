package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/examples/pipeline/job"
	"github.com/shipkit/shipkit/internal/testbed/prom"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/sign"
)

// TestMainJobOverlayNamespaceVAP: with -overlay, -namespace and -vap, the
// namespaced objects the user's overlay leaves without a namespace are judged by
// the admission policies in -namespace and applied there too: the job that the
// gate allowed deploys (it used to fail at apply on those same objects).
func TestMainJobOverlayNamespaceVAP(t *testing.T) {
	c := cluster.Get(t)
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	defer stop()
	repo := host + "/team/hello"
	const ns = "hello-overlay-ns"
	dir, overlay := namespacelessOverlay(t, repo, ns)
	vapPass := writeFile(t, dir, "vap-pass.yaml", admissionPolicy("2", "Deny"))

	out, err := runJob(t, "-platforms", "linux/amd64", "-registry", repo, "-overlay", overlay, "-namespace", ns, "-vap", vapPass,
		"-kubeconfig", c.Kubeconfig, "-context", c.Context)
	require.NoError(t, err, out)
	assert.Contains(t, out, "allowed: 3 objects, fail-on critical, Pod Security restricted, ValidatingAdmissionPolicies "+vapPass)
	assert.Contains(t, out, "applied: 3 created")
	d, err := c.Clientset().AppsV1().Deployments(ns).Get(context.Background(), "hello", metav1.GetOptions{})
	require.NoError(t, err, "the Deployment is where the policies judged it")
	assert.Contains(t, d.Spec.Template.Spec.Containers[0].Image, repo+"@sha256:")
}

// TestMainJobOverlayNamespaceRego: with -overlay and -namespace, a -rego rule
// against that namespace denies the objects the overlay leaves without one (exit
// code 3, naming the rule and the object in the namespace), and nothing is
// deployed there. (The gate used to judge them in no namespace and let them
// through, and apply deployed them into the namespace the rule forbids.)
func TestMainJobOverlayNamespaceRego(t *testing.T) {
	c := cluster.Get(t)
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	defer stop()
	repo := host + "/team/hello"
	const ns = "hello-overlay-forbidden"
	dir, overlay := namespacelessOverlay(t, repo, ns)
	rule := writeFile(t, dir, "forbidden.rego", `package main

deny contains msg if {
	input.kind == "Deployment"
	input.metadata.namespace == "`+ns+`"
	msg := sprintf("Deployment %s may not run in `+ns+`", [input.metadata.name])
}
`)
	out, err := runJob(t, "-platforms", "linux/amd64", "-registry", repo, "-overlay", overlay, "-namespace", ns, "-rego", rule,
		"-kubeconfig", c.Kubeconfig, "-context", c.Context)
	require.Error(t, err, out)
	assert.ErrorIs(t, err, sign.ErrDenied)
	assert.Equal(t, exitDenied, exitCode(err))
	assert.Contains(t, out, "denied: Deployment/"+ns+"/hello: [rego:main.deny] Deployment hello may not run in "+ns+"\n")
	assert.Regexp(t, `(?m)^deploy +skipped `, out)
	_, err = c.Clientset().AppsV1().Deployments(ns).Get(context.Background(), "hello", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "nothing deployed into %s: %v", ns, err)
}

// TestMainJobOverlayNamespaceCanary: with -overlay, -namespace and -prometheus, the
// release after the first goes out as a canary in -namespace, where apply put the
// stable Deployment the overlay leaves without a namespace: the job finds stable
// there, and the canary, its Service, the router and the analysis work there, and
// the canary is promoted. (The job used to look stable up in the object's own empty
// namespace, found nothing and deployed every release as a first one.)
func TestMainJobOverlayNamespaceCanary(t *testing.T) {
	c := cluster.Get(t)
	srv := promServer.Get(t)
	app, err := prom.NewApp()
	require.NoError(t, err)
	defer app.Close()
	require.NoError(t, srv.SetTargets(context.Background(), app.Addr))
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	defer stop()
	repo := host + "/team/hello"
	const ns = "hello-overlay-canary"
	_, overlay := namespacelessOverlay(t, repo, ns)
	release := func(rev string) string {
		out, err := runJob(t, "-platforms", "linux/amd64", "-registry", repo, "-source-rev", rev, "-overlay", overlay, "-namespace", ns,
			"-kubeconfig", c.Kubeconfig, "-context", c.Context, "-prometheus", srv.URL, "-canary-selector", `version="canary"`,
			"-analysis-interval", "2s")
		require.NoError(t, err, out)
		return out
	}
	deployments := c.Clientset().AppsV1().Deployments(ns)
	ctx := context.Background()

	out := release("v1")
	assert.Contains(t, out, "first release: deployed as stable")

	app.SetTraffic("canary", prom.Traffic{RPS: 50, Latency: 5 * time.Millisecond})
	out = release("v2")
	assert.Contains(t, out, "applied the canary beside stable")
	assert.Regexp(t, `(?m)^    ok in \d+\.\d\ds: promoted in `, out)
	v2 := regexp.MustCompile(`(?m)^image (\S+)$`).FindStringSubmatch(out)
	require.NotNil(t, v2, out)
	stable, err := deployments.Get(ctx, "hello", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, v2[1], stable.Spec.Template.Spec.Containers[0].Image, "promotion puts the canary's template on stable")
	_, err = deployments.Get(ctx, "hello"+rollout.CanarySuffix, metav1.GetOptions{})
	assert.NoError(t, err, "the canary runs beside stable, in -namespace")
}

// namespacelessOverlay writes the example service's manifests under a new
// directory with an overlay of its own that names the pushed repository and the
// Namespace ns, without a namespace transformer: the base's Deployment and Service
// name no namespace. It returns the directory and the overlay in it.
func namespacelessOverlay(t *testing.T, repo, ns string) (dir, overlay string) {
	t.Helper()
	dir = t.TempDir()
	overlay, err := job.WriteManifests(dir)
	require.NoError(t, err)
	for file, content := range map[string]string{
		"kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- namespace.yaml
- ../../base
images:
- name: hello
  newName: ` + repo + "\n",
		"namespace.yaml": `apiVersion: v1
kind: Namespace
metadata:
  name: ` + ns + `
  labels:
    pod-security.kubernetes.io/enforce: restricted
`,
	} {
		require.NoError(t, os.WriteFile(filepath.Join(overlay, file), []byte(content), 0o644))
	}
	return dir, overlay
}
