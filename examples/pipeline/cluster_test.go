package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/examples/pipeline/job"
	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/observe"
)

// TestMainJobLocalCluster runs the README's local-cluster mode on the test bed's
// control plane and Prometheus: v1 applied and Available, v2 promoted as a canary,
// v3 rolled back on its error rate with the time from the breach to weight 0; while
// the cluster is kept (-keep), what a user would see with kubectl; the spans in the
// trace file; and nothing left running after.
func TestMainJobLocalCluster(t *testing.T) {
	key := filepath.Join(t.TempDir(), "rollout.key")
	require.NoError(t, os.WriteFile(key, []byte("test rollout state key, 32 bytes"), 0o600))
	t.Setenv(job.StateKeyEnv, key)
	tracePath := filepath.Join(t.TempDir(), "trace.json")
	o, err := parseFlags(flag.NewFlagSet("pipeline", flag.ContinueOnError), []string{
		"-source", "../hello", "-platforms", "linux/amd64", "-cluster", "local", "-keep", "-trace", tracePath,
	})
	require.NoError(t, err)
	assert.Equal(t, localAnalysisInterval, o.cfg.AnalysisInterval)
	assert.Equal(t, localTimeout, o.timeout)
	o.plain = true

	var out bytes.Buffer
	var kubeconfig string
	o.local.kept = func(ctx context.Context, path string) error {
		kubeconfig = path
		checkKeptCluster(t, ctx, path, out.String())
		return nil
	}
	ctx, cancel := context.WithTimeout(t.Context(), o.timeout)
	defer cancel()
	start := time.Now()
	err = run(ctx, o, &out)
	t.Logf("wall time of the local run: %s\n%s", time.Since(start).Round(time.Millisecond), out.String())
	if errors.Is(err, testbed.ErrMissing) {
		testbed.Check(t, err)
	}
	require.NoError(t, err)
	got := out.String()

	for _, rel := range localReleases {
		assert.Contains(t, got, "--- release "+rel.name+" (")
	}
	for _, stage := range []string{"build", "push", "sbom", "scan", "sign", "verify", "render", "netpol", "gate", "deploy", "rollout"} {
		assert.Len(t, regexp.MustCompile(`(?m)^==> `+stage+`\n(?:.*\n)*?    ok in \d+\.\d\ds: `).FindAllString(got, -1), 3, "stage %s ok in each release", stage)
		assert.Regexp(t, `(?m)^`+stage+` +(ok +\d+\.\d\ds *){3}$`, got, "summary row of %s", stage)
	}
	assert.Regexp(t, `(?m)^    ok in \d+\.\d\ds: Kubernetes v1\.34\.4 at https://127\.0\.0\.1:\d+, 2 kwok nodes; Prometheus http://127\.0\.0\.1:\d+$`, got)
	assert.Contains(t, got, "3 NetworkPolicies from the Service's selector and ports: default-deny, allow-dns, ingress-app-hello")
	// The README's sample shows this line: each release's gate judges the 3 objects
	// of the overlay, the 3 NetworkPolicies and the canary a rollout applies.
	assert.Len(t, regexp.MustCompile(`(?m)^    ok in \d+\.\d\ds: allowed: 6 objects \+ canary Deployment/hello/hello-canary, `+
		`fail-on critical, Pod Security restricted; 1 finding \(1 High\) below the threshold$`).FindAllString(got, -1), 3, "the gate line of each release")
	assert.Contains(t, got, "applied: 6 created; healthy")
	assert.Contains(t, got, "first release: deployed as stable")
	assert.Contains(t, got, "applied the canary beside stable")
	assert.Regexp(t, `(?m)^    ok in \d+\.\d\ds: promoted in `, got)
	m := regexp.MustCompile(`(?m)^    ok in \d+\.\d\ds: rolled back: success-rate measured 0\.\d+ \(Failed\); breach seen → weight 0 in (\S+)$`).FindStringSubmatch(got)
	require.NotNil(t, m, "the rollback of v3 and its time")
	took, err := time.ParseDuration(m[1])
	require.NoError(t, err)
	assert.Less(t, took, 10*time.Second, "breach to weight 0")
	t.Logf("breach seen → weight 0: %s", took)
	assert.Regexp(t, `(?m)^stable runs v2 \(sha256:[0-9a-f]{12}\), Available again \S+ after the rollback$`, got)
	assert.Regexp(t, `(?m)^v1  \S+@sha256:[0-9a-f]{64}  deployed as stable$`, got)
	assert.Regexp(t, `(?m)^v2  \S+@sha256:[0-9a-f]{64}  canary Promoted: `, got)
	assert.Regexp(t, `(?m)^v3  \S+@sha256:[0-9a-f]{64}  canary Aborted: step \d analysis failed`, got)
	assert.Regexp(t, `(?m)^teardown +ok `, got)

	// Everything is gone: the API server's port is closed and its files removed.
	api := regexp.MustCompile(`Kubernetes v1\.34\.4 at (https://\S+),`).FindStringSubmatch(got)
	require.NotNil(t, api)
	u, err := url.Parse(api[1])
	require.NoError(t, err)
	_, err = net.DialTimeout("tcp", u.Host, time.Second)
	assert.Error(t, err, "the API server still listens after the teardown")
	require.NotEmpty(t, kubeconfig, "the kept cluster was not shown")
	assert.NoFileExists(t, kubeconfig)

	checkTrace(t, tracePath, got)
}

// checkKeptCluster looks at the kept cluster through its kubeconfig, as a user with
// kubectl would: stable runs v2, the canary no replica, the NetworkPolicies are there.
func checkKeptCluster(t *testing.T, ctx context.Context, kubeconfig, out string) {
	t.Helper()
	assert.Contains(t, out, "kubectl --kubeconfig "+kubeconfig+" get deploy,pods,networkpolicies -n hello")
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	require.NoError(t, err)
	client, err := kubernetes.NewForConfig(rc)
	require.NoError(t, err)
	v2 := regexp.MustCompile(`(?m)^--- release v2 .*\n(?:.*\n)*?==> push\n(?:.*\n)*?    ok in \S+: (\S+)$`).FindStringSubmatch(out)
	require.NotNil(t, v2, "v2's digest")
	stable, err := client.AppsV1().Deployments("hello").Get(ctx, "hello", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, v2[1], stable.Spec.Template.Spec.Containers[0].Image, "stable does not run v2")
	assert.True(t, available(stable), "stable is not Available: %+v", stable.Status)
	canary, err := client.AppsV1().Deployments("hello").Get(ctx, "hello"+rollout.CanarySuffix, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, int32(0), replicasOf(canary))
	nps, err := client.NetworkingV1().NetworkPolicies("hello").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var names []string
	for _, np := range nps.Items {
		names = append(names, np.Name)
	}
	assert.ElementsMatch(t, []string{"default-deny", "allow-dns", "ingress-app-hello"}, names)
}

// checkTrace reads the spans the run wrote: the run, a span per release, and under
// the third the rollout's abort.
func checkTrace(t *testing.T, path, out string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	type span struct {
		Name        string
		SpanContext struct{ SpanID string }
		Parent      struct{ SpanID string }
	}
	byID := map[string]span{}
	var spans []span
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s span
		require.NoError(t, json.Unmarshal(sc.Bytes(), &s), sc.Text())
		spans = append(spans, s)
		byID[s.SpanContext.SpanID] = s
	}
	require.NoError(t, sc.Err())
	assert.Regexp(t, `(?m)^\d+ spans in `+regexp.QuoteMeta(path)+`$`, out)
	names := map[string]bool{}
	var abortRelease string
	for _, s := range spans {
		names[s.Name] = true
		if s.Name == "abort" {
			// abort ← rollout stage ← release
			if stage, ok := byID[s.Parent.SpanID]; ok {
				abortRelease = byID[stage.Parent.SpanID].Name
			}
		}
	}
	for _, n := range []string{"pipeline -cluster local", "release v1", "release v2", "release v3", "cluster", "build", "netpol", "rollout", "promote", "abort", "teardown"} {
		assert.True(t, names[n], "no span %q in %d spans", n, len(spans))
	}
	assert.Equal(t, "release v3", abortRelease, "the abort's span is not under release v3")
}

// TestMainJobLocalClusterNotBuilt: without the control plane the local mode says how
// to get it, before it builds anything.
func TestMainJobLocalClusterNotBuilt(t *testing.T) {
	t.Setenv("KUBEBUILDER_ASSETS", t.TempDir())
	o, err := parseFlags(flag.NewFlagSet("pipeline", flag.ContinueOnError), []string{"-source", "../hello", "-cluster", "local", "-trace", filepath.Join(t.TempDir(), "trace.json")})
	require.NoError(t, err)
	o.plain = true
	var out bytes.Buffer
	err = run(t.Context(), o, &out)
	require.ErrorIs(t, err, testbed.ErrMissing)
	for _, want := range []string{"run ./hack/testbed.sh once", "15-20 min", "-build-testbed", filepath.Join(testbed.CacheDir(), "testbed")} {
		assert.ErrorContains(t, err, want)
	}
	assert.NotContains(t, out.String(), "==> build")
	assert.Regexp(t, `(?m)^cluster +failed `, out.String())
}

func TestParseFlagsLocal(t *testing.T) {
	for _, args := range [][]string{
		{"-keep"}, {"-build-testbed"}, {"-trace", "t.json"},
		{"-cluster", "remote"},
		{"-cluster", "local", "-kubeconfig", "kc"}, {"-cluster", "local", "-prometheus", "http://127.0.0.1:9090"},
		{"-cluster", "local", "-dry-run"}, {"-cluster", "local", "-overlay", "."},
	} {
		fs := flag.NewFlagSet("pipeline", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		_, err := parseFlags(fs, args)
		assert.Error(t, err, "%q", args)
	}
	o, err := parseFlags(flag.NewFlagSet("pipeline", flag.ContinueOnError), []string{"-cluster", "local", "-timeout", "3m"})
	require.NoError(t, err)
	assert.Equal(t, localAnalysisInterval, o.cfg.AnalysisInterval)
	assert.Equal(t, 3*time.Minute, o.timeout)
	o, err = parseFlags(flag.NewFlagSet("pipeline", flag.ContinueOnError), nil)
	require.NoError(t, err)
	assert.Equal(t, job.Defaults().AnalysisInterval, o.cfg.AnalysisInterval, "without -cluster the job is unchanged")
	assert.Empty(t, o.local.cluster)
}

// TestBuildTestbed: -build-testbed runs hack/testbed.sh of the repository above the
// working directory, its log lines as the step's progress, and names its last line
// when it fails.
func TestBuildTestbed(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "hack"), 0o755))
	script := filepath.Join(dir, "hack", "testbed.sh")
	sub := filepath.Join(dir, "examples", "pipeline")
	require.NoError(t, os.MkdirAll(sub, 0o755))
	t.Chdir(sub)
	var lines []string
	obs := observe.ObserverFunc(func(e observe.Event) {
		if e.Phase == observe.Progress {
			lines = append(lines, e.Message)
		}
	})

	require.NoError(t, os.WriteFile(script, []byte("echo '[testbed] building' >&2\necho '[testbed] done' >&2\npwd\n"), 0o755))
	require.NoError(t, buildTestbed(t.Context(), obs))
	assert.Equal(t, []string{"[testbed] building", "[testbed] done"}, lines)

	require.NoError(t, os.WriteFile(script, []byte("echo '[testbed] no Go module proxy' >&2\nexit 3\n"), 0o755))
	err := buildTestbed(t.Context(), obs)
	require.Error(t, err)
	assert.ErrorContains(t, err, "hack/testbed.sh: exit status 3 (last line: [testbed] no Go module proxy)")

	t.Chdir(t.TempDir())
	assert.ErrorContains(t, buildTestbed(t.Context(), obs), "hack/testbed.sh not found")
}
