package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/internal/testbed/prom"
	"github.com/shipkit/shipkit/observe/analysis"
	"github.com/shipkit/shipkit/observe/prometheus"
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

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.Stop()
	promServer.Stop()
	os.Exit(code)
}

// setup makes a namespace with a stable (v1, 10 replicas) and a canary (v2, none)
// Deployment behind a Service, and an app whose v1 and v2 requests Prometheus scrapes,
// the canary's failing at errorRate. It returns the command's flags.
func setup(t *testing.T, errorRate float64) []string {
	t.Helper()
	return setupWith(t, errorRate, true)
}

// setupWith is setup, with or without the canary Deployment (and its -canary flag).
func setupWith(t *testing.T, errorRate float64, withCanary bool) []string {
	t.Helper()
	cl := cluster.Get(t)
	srv := promServer.Get(t)
	ns := cl.NewNamespace(t)
	c := cl.Clientset()
	for _, d := range []struct {
		name, track, version string
		replicas             int32
	}{{"web", "stable", "v1", 10}, {"web-canary", "canary", "v2", 0}} {
		if d.track == "canary" && !withCanary {
			continue
		}
		labels := map[string]string{"app": "web", "track": d.track}
		pod := map[string]string{"app": "web", "track": d.track, "version": d.version}
		_, err := c.AppsV1().Deployments(ns).Create(t.Context(), &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: d.name, Labels: labels},
			Spec: appsv1.DeploymentSpec{
				Replicas: &d.replicas,
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: pod},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example/web:" + d.version}}},
				},
			},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	_, err := c.CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	app, err := prom.NewApp()
	require.NoError(t, err)
	t.Cleanup(app.Close)
	require.NoError(t, srv.SetTargets(t.Context(), app.Addr))
	app.SetTraffic("v1", prom.Traffic{RPS: 100, Latency: 10 * time.Millisecond})
	app.SetTraffic("v2", prom.Traffic{RPS: 100, ErrorRate: errorRate, Latency: 10 * time.Millisecond})
	metrics := analysis.MatchLabels(map[string]string{"version": "v2", "instance": app.Addr})
	// Wait until Prometheus has a window of the canary's requests.
	p, err := prometheus.New(srv.URL)
	require.NoError(t, err)
	q := analysis.SuccessRate(p, metrics, 0.95, analysis.Window(5*time.Second)).Query
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		v, err := p.Query(t.Context(), q)
		require.NoError(c, err)
		assert.InDelta(c, 1-errorRate, v, 0.02)
	}, time.Minute, 250*time.Millisecond)

	keyFile := filepath.Join(t.TempDir(), "rollout.key")
	require.NoError(t, os.WriteFile(keyFile, []byte("test rollout state key, 32 bytes"), 0o600))
	args := []string{"-kubeconfig", cl.Kubeconfig, "-context", cl.Context, "-namespace", ns, "-state-key-file", keyFile,
		"-stable", "web", "-service", "web", "-prometheus", srv.URL, "-metrics", metrics,
		"-min-success", "0.95", "-count", "2", "-interval", "1s", "-window", "5s", "-timeout", "3m"}
	if withCanary {
		args = append(args, "-canary", "web-canary")
	}
	return args
}

func runCommand(t *testing.T, args []string) (string, error) {
	t.Helper()
	fs := flag.NewFlagSet("canary", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg, err := parseFlags(fs, args)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), cfg.timeout)
	defer cancel()
	var out bytes.Buffer
	err = run(ctx, cfg, &out)
	t.Log(out.String())
	return out.String(), err
}

func TestCanaryPromoted(t *testing.T) {
	out, err := runCommand(t, setup(t, 0))
	require.NoError(t, err)
	for _, line := range []string{
		`(?m)^step 1/6 setWeight 10$`,
		`(?m)^    canary at 10% \(replicas: web 9, web-canary 1\)$`,
		`(?m)^    canary at 50% \(replicas: web 5, web-canary 5\)$`,
		`(?m)^    canary at 100% \(replicas: web 0, web-canary 10\)$`,
		`(?m)^    success-rate 2/2: 1 Successful \(success if result >= 0.95\)$`,
		`(?m)^2\s+analysis success-rate\s+10%\s+1\.000 1\.000\s+Completed`,
		`(?m)^4\s+analysis success-rate\s+50%\s+1\.000 1\.000\s+Completed`,
		`(?m)^5\s+setWeight 100\s+100%\s+-\s+Completed`,
		`(?m)^Promoted: stable runs revision [0-9a-f]+`,
	} {
		assert.Regexp(t, regexp.MustCompile(line), out)
	}
}

// TestCanaryFromImage: with -image, the command makes the canary from the stable
// Deployment (rollout.CanaryDeployment, applied with deploy/apply: web-canary,
// track=canary, the new image, one replica until the router scales it) and rolls it
// out; stable then runs the new image.
func TestCanaryFromImage(t *testing.T) {
	args := append(setupWith(t, 0, false), "-image", "registry.example/web:v3", "-total", "10", "-steps", "10,100")
	out, err := runCommand(t, args)
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^canary \S+/web: web \(registry.example/web:v1\) → web-canary \(registry.example/web:v3\)`, out)
	assert.Regexp(t, `(?m)^    canary at 10% \(replicas: web 9, web-canary 1\)$`, out)
	assert.Regexp(t, `(?m)^Promoted: `, out)

	c := cluster.Get(t).Clientset()
	ns := args[slices.Index(args, "-namespace")+1]
	canary, err := c.AppsV1().Deployments(ns).Get(t.Context(), "web-canary", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"app": "web", "track": "canary"}, canary.Labels)
	assert.Equal(t, map[string]string{"app": "web", "track": "canary"}, canary.Spec.Selector.MatchLabels)
	assert.Equal(t, "canary", canary.Spec.Template.Labels["track"])
	stable, err := c.AppsV1().Deployments(ns).Get(t.Context(), "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "registry.example/web:v3", stable.Spec.Template.Spec.Containers[0].Image)
	assert.Equal(t, "stable", stable.Spec.Template.Labels["track"])

	fs := flag.NewFlagSet("canary", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, err = parseFlags(fs, append(args, "-canary", "web-canary"))
	assert.ErrorContains(t, err, "-canary and -image: give one")
}

func TestCanaryRolledBack(t *testing.T) {
	out, err := runCommand(t, setup(t, 0.3))
	require.ErrorIs(t, err, errNotPromoted)
	assert.Regexp(t, `(?m)^    success-rate 1/2: 0\.7\d* Failed \(success if result >= 0.95\)$`, out)
	assert.Regexp(t, `(?m)^2\s+analysis success-rate\s+10%\s+0\.7\d\d\s+Failed`, out)
	assert.Regexp(t, `(?m)^Aborted: step 2 analysis failed`, out)
}

func TestCanaryBadInput(t *testing.T) {
	fs := flag.NewFlagSet("canary", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, err := parseFlags(fs, []string{"-steps", "10,x", "-stable", "web"})
	require.Error(t, err)
	for _, want := range []string{`-steps: "x" is not a whole number`, "-canary is required", "-prometheus is required", "-metrics is required", "-state-key-file is required"} {
		assert.ErrorContains(t, err, want)
	}

	args := setup(t, 0)
	args = append(args, "-steps", "50,10,100")
	out, err := runCommand(t, args)
	require.Error(t, err)
	assert.ErrorContains(t, err, "weight 10 does not increase on the previous 50")
	assert.NotContains(t, out, "step 1")
}
