package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/examples/pipeline/job"
	"github.com/shipkit/shipkit/internal/testbed/registry"
)

// TestMainJobDryRunHidesSecrets: an earlier release applied a Secret with its values
// in the manifests (as field manager shipkit-pipeline); the team then takes the
// values out of the manifests, as the gate's secret-plaintext rule asks, and plans
// the next release with -dry-run. The plan, printed to stdout (a CI log), says that
// each key goes away and shows none of the values, plain or base64.
func TestMainJobDryRunHidesSecrets(t *testing.T) {
	c := cluster.Get(t)
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	defer stop()
	repo := host + "/team/hello"
	const ns = "hello-secret-plan"
	namespace := `apiVersion: v1
kind: Namespace
metadata:
  name: ` + ns + `
  labels:
    pod-security.kubernetes.io/enforce: restricted
`
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	values := []string{"first-password-1", "first-token-2"}

	// The earlier release, values and all.
	earlier, err := render.Parse("earlier.yaml", []byte(namespace+`---
apiVersion: v1
kind: Secret
metadata: {name: hello-db, namespace: `+ns+`}
data: {password: `+b64(values[0])+`, token: `+b64(values[1])+`}
`))
	require.NoError(t, err)
	m, err := apply.New(c.RESTConfig(), apply.Options{FieldManager: "shipkit-pipeline"})
	require.NoError(t, err)
	_, err = m.Apply(t.Context(), earlier)
	require.NoError(t, err)

	dir, err := job.WriteManifests(t.TempDir())
	require.NoError(t, err)
	for file, content := range map[string]string{
		"kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: ` + ns + `
resources:
- namespace.yaml
- secret.yaml
- ../../base
images:
- name: hello
  newName: ` + repo + "\n",
		"namespace.yaml": namespace,
		"secret.yaml": `apiVersion: v1
kind: Secret
metadata:
  name: hello-db
type: Opaque
`,
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644))
	}
	out, err := runJob(t, "-platforms", "linux/amd64", "-registry", repo, "-kubeconfig", c.Kubeconfig, "-context", c.Context,
		"-overlay", dir, "-dry-run")
	require.NoError(t, err, out)
	t.Log(out)
	assert.Contains(t, out, "Secret/"+ns+"/hello-db configured")
	assert.Contains(t, out, "  data.password: removed (value redacted)")
	assert.Contains(t, out, "  data.token: removed (value redacted)")
	for _, v := range values {
		assert.NotContains(t, out, v, "plain value")
		assert.NotContains(t, out, b64(v), "base64 value")
		assert.NotContains(t, out, b64(v)[:12], "base64 value, however it is cut")
	}
}
