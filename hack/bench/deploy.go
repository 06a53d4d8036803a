package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/internal/testbed/kube"
)

// kubectlVersion is the version hack/bench/setup/kubectl.sh builds: the test control
// plane's.
const kubectlVersion = kube.KubernetesVersion

type deployConfig struct {
	rounds, objects, deployments, planObjects int
	kubectl                                   string
}

// deployCmd compares a server-side apply of many objects (ConfigMaps and
// Deployments, each round into a fresh namespace) by deploy/apply with `kubectl
// apply --server-side` on the same API server (a test control plane started here),
// rounds alternating; then it times a plan of fewer objects against
// `kubectl diff --server-side`.
func deployCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	cfg := deployConfig{}
	fs.IntVar(&cfg.rounds, "rounds", 5, "rounds; each applies into fresh namespaces")
	fs.IntVar(&cfg.objects, "objects", 500, "objects per apply")
	fs.IntVar(&cfg.deployments, "deployments", 100, "how many of the objects are Deployments (the rest are ConfigMaps)")
	fs.IntVar(&cfg.planObjects, "plan-objects", 100, "objects of the plan scenario")
	fs.StringVar(&cfg.kubectl, "kubectl", defaultTool("kubectl", kubectlVersion), "path of kubectl (hack/bench/setup.sh kubectl builds it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := os.Stat(cfg.kubectl); err != nil {
		return fmt.Errorf("kubectl not found at %s (run hack/bench/setup.sh kubectl or pass -kubectl): %w", cfg.kubectl, err)
	}
	fmt.Fprintln(out, "starting a test control plane (kube-apiserver, etcd, controller-manager, scheduler, kwok)")
	c, stop, err := kube.StartContext(ctx)
	if err != nil {
		return err
	}
	defer stop()
	return runDeploy(ctx, cfg, c, out)
}

// deployTool is one way of applying a file of objects to a namespace.
type deployTool struct {
	name string
	run  func(ctx context.Context, objs []*unstructured.Unstructured, file string) error
}

func runDeploy(ctx context.Context, cfg deployConfig, c *kube.Cluster, out io.Writer) error {
	tmp, err := os.MkdirTemp("", "shipkit-bench-deploy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// shipkit reads the same kubeconfig as kubectl, as a program would; the test bed's
	// own REST config lifts client-side rate limits, which would not be a fair match.
	restCfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	shipkit := func(concurrency int) func(ctx context.Context, objs []*unstructured.Unstructured, _ string) error {
		return func(ctx context.Context, objs []*unstructured.Unstructured, _ string) error {
			m, err := apply.New(restCfg, apply.Options{FieldManager: "bench", Concurrency: concurrency})
			if err != nil {
				return err
			}
			_, err = m.Apply(ctx, objs)
			return err
		}
	}
	tools := []deployTool{
		{"shipkit", shipkit(0)},
		{"kubectl", func(ctx context.Context, _ []*unstructured.Unstructured, file string) error {
			return kubectl(ctx, cfg.kubectl, c.Kubeconfig, "apply", "--server-side", "--field-manager=bench", "-f", file)
		}},
		// One request at a time, as kubectl does: what the requests cost, without
		// shipkit's concurrency.
		{"shipkit-serial", shipkit(1)},
	}

	fmt.Fprintf(out, "apply of %d objects (%d ConfigMaps, %d Deployments), %d rounds, a fresh namespace each\n",
		cfg.objects, cfg.objects-cfg.deployments, cfg.deployments, cfg.rounds)
	times := map[string][]time.Duration{}
	for r := range cfg.rounds {
		order := slices.Clone(tools)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, t := range order {
			ns := fmt.Sprintf("bench-%d-%s", r, t.name)
			objs, file, err := benchObjects(tmp, ns, cfg.objects, cfg.deployments)
			if err != nil {
				return err
			}
			if err := createNamespace(ctx, c, ns); err != nil {
				return err
			}
			start := time.Now()
			if err := t.run(ctx, objs, file); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			d := time.Since(start)
			times[t.name] = append(times[t.name], d)
			fmt.Fprintf(out, "  round %d %-13s %7.2fs\n", r, t.name, d.Seconds())
			if err := countObjects(ctx, c, ns, cfg.objects-cfg.deployments, cfg.deployments); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			// Deleting the namespace is not timed; it runs while the next tool works.
			_ = c.Clientset().CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		}
	}

	plans, err := runPlan(ctx, cfg, c, restCfg, tmp)
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "\n%-36s %10s %10s %8s\n", "scenario", "shipkit", "kubectl", "ratio")
	k := deployMedian(times["kubectl"])
	row := func(name string, s, k time.Duration) {
		fmt.Fprintf(out, "%-36s %9.3fs %9.3fs %7.2fx\n", name, s.Seconds(), k.Seconds(), s.Seconds()/k.Seconds())
	}
	row(fmt.Sprintf("apply %d objects", cfg.objects), deployMedian(times["shipkit"]), k)
	row("  shipkit one request at a time", deployMedian(times["shipkit-serial"]), k)
	d := deployMedian(plans["kubectl"])
	row(fmt.Sprintf("plan %d objects (1 change), new process", cfg.planObjects), deployMedian(plans["cold"]), d)
	row("  shipkit with a Manager kept", deployMedian(plans["warm"]), d)
	return nil
}

// runPlan applies planObjects objects once, then times, alternating, a plan of the
// same objects with one ConfigMap changed: by deploy/apply with a new Manager (as a
// new process would: discovery included), with one Manager kept across plans (as a
// Terraform provider or controller would), and by `kubectl diff --server-side`.
func runPlan(ctx context.Context, cfg deployConfig, c *kube.Cluster, restCfg *rest.Config, tmp string) (map[string][]time.Duration, error) {
	ns := "bench-plan"
	deployments := cfg.planObjects * cfg.deployments / cfg.objects
	objs, _, err := benchObjects(tmp, ns, cfg.planObjects, deployments)
	if err != nil {
		return nil, err
	}
	if err := createNamespace(ctx, c, ns); err != nil {
		return nil, err
	}
	kept, err := apply.New(restCfg, apply.Options{FieldManager: "bench"})
	if err != nil {
		return nil, err
	}
	if _, err := kept.Apply(ctx, objs); err != nil {
		return nil, err
	}
	changed, file, err := benchObjects(tmp, ns, cfg.planObjects, deployments)
	if err != nil {
		return nil, err
	}
	_ = unstructured.SetNestedField(changed[len(changed)-1].Object, "changed", "data", "value")
	if err := writeObjects(file, changed); err != nil {
		return nil, err
	}
	times := map[string][]time.Duration{}
	plan := func(m *apply.Manager) error {
		if m == nil {
			var err error
			if m, err = apply.New(restCfg, apply.Options{FieldManager: "bench"}); err != nil {
				return err
			}
		}
		cs, err := m.Plan(ctx, changed)
		if err != nil {
			return err
		}
		if n := cs.Count("configured"); n != 1 {
			return fmt.Errorf("plan: %d objects configured, want 1:\n%s", n, cs)
		}
		return nil
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{"cold", func() error { return plan(nil) }},
		{"warm", func() error { return plan(kept) }},
		{"kubectl", func() error {
			err := kubectl(ctx, cfg.kubectl, c.Kubeconfig, "diff", "--server-side", "--field-manager=bench", "-f", file)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 { // 1: differences found
				return fmt.Errorf("kubectl diff: want exit status 1 (a difference): %w", err)
			}
			return nil
		}},
	}
	for r := range cfg.rounds {
		order := slices.Clone(steps)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			start := time.Now()
			if err := s.run(); err != nil {
				return nil, err
			}
			times[s.name] = append(times[s.name], time.Since(start))
		}
	}
	return times, nil
}

// benchObjects renders n objects into ns, the first deployments of them
// Deployments and the rest ConfigMaps, and writes them to a file for kubectl.
func benchObjects(dir, ns string, n, deployments int) ([]*unstructured.Unstructured, string, error) {
	var b strings.Builder
	for i := range n {
		if i < deployments {
			fmt.Fprintf(&b, `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-%[1]d, namespace: %[2]s, labels: {app: web-%[1]d}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web-%[1]d}}
  template:
    metadata: {labels: {app: web-%[1]d}}
    spec:
      containers:
      - name: web
        image: registry.example/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
        ports: [{containerPort: 8080}]
        resources: {requests: {cpu: 10m, memory: 32Mi}}
`, i, ns)
			continue
		}
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings-%d, namespace: %s}\ndata: {value: %q, greeting: hello}\n", i, ns, fmt.Sprint(i))
	}
	objs, err := render.Parse(ns+".yaml", []byte(b.String()))
	if err != nil {
		return nil, "", err
	}
	file := filepath.Join(dir, ns+".yaml")
	return objs, file, os.WriteFile(file, []byte(b.String()), 0o600)
}

func writeObjects(file string, objs []*unstructured.Unstructured) error {
	var b strings.Builder
	for _, o := range objs {
		j, err := o.MarshalJSON()
		if err != nil {
			return err
		}
		b.WriteString("---\n")
		b.Write(j)
		b.WriteString("\n")
	}
	return os.WriteFile(file, []byte(b.String()), 0o600)
}

func kubectl(ctx context.Context, bin, kubeconfig string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kubectl %s: %w: %s", args[0], err, stderr.String())
	}
	return nil
}

func createNamespace(ctx context.Context, c *kube.Cluster, ns string) error {
	_, err := c.Clientset().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	return err
}

// countObjects checks that a tool really applied everything.
func countObjects(ctx context.Context, c *kube.Cluster, ns string, configMaps, deployments int) error {
	cms, err := c.Clientset().CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	ds, err := c.Clientset().AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	settings := 0 // besides kube-root-ca.crt, which the controller-manager adds
	for _, cm := range cms.Items {
		if strings.HasPrefix(cm.Name, "settings-") {
			settings++
		}
	}
	if settings != configMaps || len(ds.Items) != deployments {
		return fmt.Errorf("namespace %s holds %d ConfigMaps and %d Deployments, want %d and %d",
			ns, settings, len(ds.Items), configMaps, deployments)
	}
	return nil
}

func deployMedian(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	c := slices.Clone(ds)
	slices.Sort(c)
	return c[len(c)/2]
}
