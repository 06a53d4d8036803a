package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/testbed/registry"
)

// helloChart is a Helm chart of the example service: a Deployment that passes Pod
// Security restricted and a Service, in no namespace (the release's, at apply).
var helloChart = map[string]string{
	"Chart.yaml":  "apiVersion: v2\nname: hello\nversion: 0.1.0\nappVersion: v1\n",
	"values.yaml": "image: {repository: hello, tag: placeholder}\nreplicas: 1\n",
	"templates/_helpers.tpl": `{{- define "hello.selector" -}}
app: {{ .Release.Name }}
{{- end -}}
`,
	"templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {{- include "hello.selector" . | nindent 6 }}
  template:
    metadata:
      labels: {{- include "hello.selector" . | nindent 8 }}
    spec:
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: hello
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          resources:
            requests: {cpu: 10m, memory: 16Mi}
            limits: {cpu: 200m, memory: 64Mi}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
`,
	"templates/service.yaml": `apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  selector: {{- include "hello.selector" . | nindent 4 }}
  ports: [{port: 80, targetPort: 8080}]
`,
}

// TestMainJobChart: -chart renders a Helm chart instead of the overlay, with -values
// naming the pushed repository, and the image pinned by digest as for an overlay.
func TestMainJobChart(t *testing.T) {
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	defer stop()
	repo := host + "/team/hello"
	dir := t.TempDir()
	chart := filepath.Join(dir, "hello")
	for file, content := range helloChart {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(chart, file)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(chart, file), []byte(content), 0o644))
	}
	values := filepath.Join(dir, "prod.yaml")
	require.NoError(t, os.WriteFile(values, []byte("image: {repository: "+repo+"}\nreplicas: 3\n"), 0o644))

	out, err := runJob(t, "-platforms", "linux/amd64", "-registry", repo, "-chart", chart, "-values", values,
		"-namespace", "team-hello")
	require.NoError(t, err, out)
	assert.Regexp(t, `(?m)^    ok in \d+\.\d\ds: 2 objects \(Service, Deployment\) from chart hello 0\.1\.0, image pinned to sha256:[0-9a-f]{12}; 2 placed in namespace team-hello$`, out)
	assert.Contains(t, out, "allowed: 2 objects, fail-on critical, Pod Security restricted")
	for _, obj := range []string{"Deployment/team-hello/hello", "Service/team-hello/hello"} {
		assert.Contains(t, out, "    "+obj+" created\n", "the plan shows the release's namespace, where apply puts them")
	}
	assert.Regexp(t, `(?m)^image `+regexp.QuoteMeta(repo)+`@sha256:[0-9a-f]{64}$`, out)

	// A chart whose values do not name the pushed repository pins nothing: an error.
	out, err = runJob(t, "-platforms", "linux/amd64", "-registry", repo, "-chart", chart)
	require.Error(t, err, out)
	assert.Contains(t, out, "pins no image of the objects")
}

func TestChartFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-chart", "testdata", "-overlay", "."},
		{"-values", "x.yaml"},
		{"-cluster", "local", "-chart", "."},
	} {
		fs := flag.NewFlagSet("pipeline", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o, err := parseFlags(fs, append([]string{"-source", "../hello"}, args...))
		if err == nil {
			err = run(t.Context(), o, io.Discard)
		}
		assert.Error(t, err, "%q", args)
	}
}
