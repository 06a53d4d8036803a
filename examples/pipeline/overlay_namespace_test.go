package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/examples/pipeline/job"
	"github.com/shipkit/shipkit/internal/testbed/registry"
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
	dir := t.TempDir()
	overlay, err := job.WriteManifests(dir)
	require.NoError(t, err)
	const ns = "hello-overlay-ns"
	for file, content := range map[string]string{
		// No namespace transformer: the base's Deployment and Service name none.
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
