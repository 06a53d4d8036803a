package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/internal/testbed/prom"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

var (
	cluster    = testbed.Lazy[*kube.Cluster]{Start: kube.Start}
	promServer = testbed.Lazy[*prom.Server]{Start: func() (*prom.Server, func(), error) {
		s, err := prom.Start(context.Background())
		if err != nil {
			return nil, nil, err
		}
		return s, s.Stop, nil
	}}
)

// TestMain runs main itself when the test binary is started as the command (see
// runCommand), so a test can check the real exit code.
func TestMain(m *testing.M) {
	if os.Getenv("PIPELINE_TEST_MAIN") == "1" {
		os.Args = append([]string{"pipeline"}, os.Args[1:]...)
		main()
		return
	}
	code := m.Run()
	cluster.Stop()
	promServer.Stop()
	os.Exit(code)
}

// runJob runs the job with the flags on the example service, in plain mode.
func runJob(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	o, err := parseFlags(flag.NewFlagSet("pipeline", flag.ContinueOnError), append([]string{"-source", "../hello"}, args...))
	require.NoError(t, err)
	o.plain = true
	var out bytes.Buffer
	err = run(ctx, o, &out)
	return out.String(), err
}

// TestMainJob runs the README's main job on its defaults, everything in process, and
// checks what each stage promises to show.
func TestMainJob(t *testing.T) {
	out, err := runJob(t)
	require.NoError(t, err, out)

	for _, stage := range []string{"build", "push", "sbom", "scan", "sign", "verify", "render", "gate", "deploy"} {
		assert.Regexp(t, `(?m)^==> `+stage+`\n(.*\n)*?    ok in \d+\.\d\ds: `, out, "stage %s", stage)
		assert.Regexp(t, `(?m)^`+stage+` +ok +\d+\.\d\ds$`, out, "summary row of %s", stage)
	}
	// The SBOM summary: Go modules in each platform's binary.
	assert.Regexp(t, `(?m)^    TYPE +LINUX/AMD64 +LINUX/ARM64$`, out)
	assert.Regexp(t, `(?m)^    go-module +[1-9]\d* +[1-9]\d*$`, out)
	// The findings table: x/text v0.3.7 has GHSA-69ch-w2m2-3vjp (High, fixed in
	// 0.3.8); GHSA-ppp9-7jff-5vj2 was fixed in 0.3.7 and must not be reported.
	assert.Regexp(t, `(?m)^    golang\.org/x/text +v0\.3\.7 +0\.3\.8 +go-module +GHSA-69ch-w2m2-3vjp +High$`, out)
	assert.NotContains(t, out, "GHSA-ppp9-7jff-5vj2")
	assert.Contains(t, out, "1 finding (1 High) against 2 embedded advisories; passes fail-on critical")
	assert.Contains(t, out, "signed by pipeline; 5 attestations verified (1 on the index, the others on 2 platform image(s))")
	assert.Contains(t, out, "allowed: 3 objects, fail-on critical, Pod Security restricted; 1 finding (1 High) below the threshold")
	// The plan against an empty cluster.
	for _, obj := range []string{"Namespace/hello", "Deployment/hello/hello", "Service/hello/hello"} {
		assert.Contains(t, out, "    "+obj+" created\n")
	}
	assert.Regexp(t, `(?m)^image 127\.0\.0\.1:\d+/shipkit/hello@sha256:[0-9a-f]{64}$`, out)
}

// TestMainJobDeniedByVulnerability: the example links a version of x/text with a
// High advisory, so a gate at high denies it, names the advisory, and nothing is
// deployed. It runs the command itself to check the exit code.
func TestMainJobDeniedByVulnerability(t *testing.T) {
	stdout, stderr, code := runCommand(t, "-source", "../hello", "-platforms", "linux/amd64", "-fail-on", "high")
	assert.Equal(t, exitDenied, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	assert.Regexp(t, `(?m)^==> build\n`, stdout, "plain lines when the output is not a terminal")
	assert.NotContains(t, stdout, "\x1b[", "no escape sequences when the output is not a terminal")
	assert.Regexp(t, `(?m)^    denied: .*Deployment/hello/hello: container hello: image .*@sha256:[0-9a-f]{64}: .*GHSA-69ch-w2m2-3vjp`, stdout)
	assert.Regexp(t, `(?m)^gate +denied `, stdout)
	assert.Regexp(t, `(?m)^deploy +skipped +-$`, stdout)
	assert.Contains(t, stderr, "pipeline: gate: objects denied by policy")
	assert.Contains(t, stderr, "GHSA-69ch-w2m2-3vjp")
	assert.NotContains(t, stdout, " created\n", "nothing may be planned after a denial")
}

// TestMainJobDeniedUntrustedKey: a policy that trusts another key than the one that
// signed denies the image at the verify stage.
func TestMainJobDeniedUntrustedKey(t *testing.T) {
	pair, err := cosign.GenerateKeyPair([]byte("other"))
	require.NoError(t, err)
	_, pub, err := pair.WriteFiles(t.TempDir())
	require.NoError(t, err)

	out, err := runJob(t, "-platforms", "linux/amd64", "-trust", pub)
	require.Error(t, err, out)
	var denied *sign.DeniedError
	require.ErrorAs(t, err, &denied)
	assert.ErrorContains(t, err, "verify: ")
	assert.Equal(t, exitDenied, exitCode(err))
	assert.Regexp(t, `(?m)^    denied: untrusted-signature: `, out)
	assert.Regexp(t, `(?m)^verify +denied `, out)
	for _, stage := range []string{"render", "gate", "deploy"} {
		assert.Regexp(t, `(?m)^`+stage+` +skipped +-$`, out)
	}
}

// TestMainJobSignsWithKeyFile: a cosign key file and its password from the
// environment sign, and the job verifies against the public key file.
func TestMainJobSignsWithKeyFile(t *testing.T) {
	dir := t.TempDir()
	pair, err := cosign.GenerateKeyPair([]byte("s3cret"))
	require.NoError(t, err)
	priv, pub, err := pair.WriteFiles(dir)
	require.NoError(t, err)
	t.Setenv("COSIGN_PASSWORD", "s3cret")

	out, err := runJob(t, "-platforms", "linux/amd64", "-key", priv, "-trust", pub)
	require.NoError(t, err, out)
	assert.Contains(t, out, "signed with key "+priv)
	assert.Contains(t, out, "signed by "+pub+"; 3 attestations verified (1 on the index, the others on 1 platform image(s))")
	assert.NotContains(t, out, "s3cret")

	t.Setenv("COSIGN_PASSWORD", "wrong")
	out, err = runJob(t, "-platforms", "linux/amd64", "-key", priv)
	require.ErrorIs(t, err, cosign.ErrWrongPassword, out)
	assert.Equal(t, exitFailed, exitCode(err))
	assert.Regexp(t, `(?m)^sign +failed `, out)
}

// TestMainJobAppliesToCluster: with a kubeconfig the job applies the overlay to the
// test control plane and waits until the Deployment is Available; a second run with
// -dry-run plans no change, since the build is reproducible to the digest (given the
// same source revision, which the image records).
func TestMainJobAppliesToCluster(t *testing.T) {
	c := cluster.Get(t)
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	defer stop()
	repo := host + "/team/hello"
	out, err := runJob(t, "-registry", repo, "-source-rev", "test", "-kubeconfig", c.Kubeconfig, "-context", c.Context, "-namespace", "hello-apply", "-wait", "2m")
	require.NoError(t, err, out)
	assert.Contains(t, out, "applied: 3 created; healthy")
	digest := regexp.MustCompile(`(?m)^image (\S+)$`).FindStringSubmatch(out)
	require.NotNil(t, digest, out)
	assert.Contains(t, digest[1], repo+"@sha256:")

	ctx := context.Background()
	d, err := c.Clientset().AppsV1().Deployments("hello-apply").Get(ctx, "hello", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, digest[1], d.Spec.Template.Spec.Containers[0].Image, "the Deployment runs the image by digest")
	assert.True(t, available(d), "Deployment not Available: %+v", d.Status)
	assert.Equal(t, int32(2), d.Status.AvailableReplicas)
	ns, err := c.Clientset().CoreV1().Namespaces().Get(ctx, "hello-apply", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "restricted", ns.Labels["pod-security.kubernetes.io/enforce"])

	out, err = runJob(t, "-registry", repo, "-source-rev", "test", "-kubeconfig", c.Kubeconfig, "-namespace", "hello-apply", "-dry-run")
	require.NoError(t, err, out)
	assert.Contains(t, out, "plan (server-side dry run): 3 unchanged")
}

// TestMainJobCanary: with Prometheus, the first release deploys as stable; the next
// goes out as a canary beside it and is promoted when its success rate holds, and a
// release whose canary fails its analysis is rolled back, leaving stable as it was.
// Prometheus scrapes the test bed's app, which plays the canary's request metrics.
func TestMainJobCanary(t *testing.T) {
	c := cluster.Get(t)
	srv := promServer.Get(t)
	app, err := prom.NewApp()
	require.NoError(t, err)
	defer app.Close()
	require.NoError(t, srv.SetTargets(context.Background(), app.Addr))
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	defer stop()
	release := func(rev string) (string, error) {
		return runJob(t, "-registry", host+"/team/hello", "-source-rev", rev, "-kubeconfig", c.Kubeconfig,
			"-namespace", "hello-canary", "-prometheus", srv.URL, "-canary-selector", `version="canary"`,
			"-analysis-interval", "2s", "-platforms", "linux/amd64")
	}
	stableImage := func() string {
		d, err := c.Clientset().AppsV1().Deployments("hello-canary").Get(context.Background(), "hello", metav1.GetOptions{})
		require.NoError(t, err)
		return d.Spec.Template.Spec.Containers[0].Image
	}
	image := func(out string) string {
		m := regexp.MustCompile(`(?m)^image (\S+)$`).FindStringSubmatch(out)
		require.NotNil(t, m, out)
		return m[1]
	}

	out, err := release("v1")
	require.NoError(t, err, out)
	assert.Contains(t, out, "first release: deployed as stable")
	v1 := image(out)
	assert.Equal(t, v1, stableImage())

	app.SetTraffic("canary", prom.Traffic{RPS: 50, Latency: 5 * time.Millisecond})
	out, err = release("v2")
	require.NoError(t, err, out)
	assert.Contains(t, out, "applied the canary beside stable")
	assert.Regexp(t, `(?m)^    ok in \d+\.\d\ds: promoted in `, out)
	v2 := image(out)
	assert.NotEqual(t, v1, v2)
	assert.Equal(t, v2, stableImage(), "promotion puts the canary's template on stable")

	app.SetTraffic("canary", prom.Traffic{RPS: 50, ErrorRate: 0.5, Latency: 5 * time.Millisecond})
	out, err = release("v3")
	require.Error(t, err, out)
	assert.Contains(t, err.Error(), "canary Aborted")
	assert.Regexp(t, `(?m)^rollout +failed `, out)
	assert.Equal(t, v2, stableImage(), "an aborted canary leaves stable as it was")
}

func available(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// TestMainJobBadInput: a path that does not exist fails before anything is built,
// naming what is missing.
func TestMainJobBadInput(t *testing.T) {
	for name, tc := range map[string]struct{ args []string }{
		"no such source":       {[]string{"-source", "../nosuchdir"}},
		"no such key":          {[]string{"-key", "/nonexistent/cosign.key"}},
		"no such key to trust": {[]string{"-trust", "/nonexistent/cosign.pub"}},
		"no such DB":           {[]string{"-db", "/nonexistent/db"}},
		"no such overlay":      {[]string{"-overlay", "/nonexistent/overlay"}},
		"no such kubeconfig":   {[]string{"-kubeconfig", "/nonexistent/kubeconfig"}},
	} {
		t.Run(name, func(t *testing.T) {
			o, err := parseFlags(flag.NewFlagSet("pipeline", flag.ContinueOnError), append([]string{"-source", "../hello"}, tc.args...))
			require.NoError(t, err)
			o.plain = true
			var out bytes.Buffer
			err = run(context.Background(), o, &out)
			require.Error(t, err)
			assert.Equal(t, exitFailed, exitCode(err))
			assert.Contains(t, err.Error(), tc.args[1])
			assert.NotContains(t, out.String(), "==> build", "nothing may run")
		})
	}
	o, err := parseFlags(flag.NewFlagSet("pipeline", flag.ContinueOnError), []string{"-source", "../hello", "-prometheus", "http://127.0.0.1:9090"})
	require.NoError(t, err)
	err = run(context.Background(), o, io.Discard)
	assert.ErrorContains(t, err, "needs a cluster")
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(flag.NewFlagSet("pipeline", flag.ContinueOnError), []string{"-fail-on", "HIGH", "-platforms", "linux/amd64, linux/arm64,", "-trust", "a.pub,b.pub"})
	require.NoError(t, err)
	assert.Equal(t, "High", o.cfg.FailOn.String())
	assert.Equal(t, []string{"linux/amd64", "linux/arm64"}, o.cfg.Platforms)
	assert.Equal(t, []string{"a.pub", "b.pub"}, o.cfg.TrustedKeys)

	for _, args := range [][]string{{"-fail-on", "severe"}, {"extra"}, {"-nosuchflag"}} {
		fs := flag.NewFlagSet("pipeline", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		_, err := parseFlags(fs, args)
		assert.Error(t, err, "%q", args)
	}
}

func TestExitCode(t *testing.T) {
	assert.Equal(t, 0, exitCode(nil))
	assert.Equal(t, exitFailed, exitCode(errors.New("boom")))
	assert.Equal(t, exitDenied, exitCode(fmt.Errorf("gate: %w", &deploy.DecisionError{Reasons: []deploy.Reason{{}}})))
	assert.Equal(t, exitDenied, exitCode(&sign.DeniedError{Reasons: []sign.Reason{{Code: sign.ReasonUnsigned}}}))
}

// runCommand runs the test binary as the pipeline command (see TestMain) in this
// directory and returns its output and exit code.
func runCommand(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	wd, err := filepath.Abs(".")
	require.NoError(t, err)
	cmd := exec.Command(exe, args...)
	cmd.Dir = wd
	cmd.Env = append(os.Environ(), "PIPELINE_TEST_MAIN=1")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return o.String(), e.String(), exit.ExitCode()
	}
	require.NoError(t, err)
	return o.String(), e.String(), 0
}
