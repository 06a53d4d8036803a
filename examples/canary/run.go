package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/mesh/replicas"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/observe/analysis"
	"github.com/shipkit/shipkit/observe/prometheus"
)

// errNotPromoted is wrapped when the rollout ended without promotion: rolled back or
// paused.
var errNotPromoted = errors.New("canary not promoted")

// run rolls the canary out and prints each step as it happens, then a summary.
func run(ctx context.Context, c config, out io.Writer) error {
	rc, err := restConfig(c.kubeconfig, c.context)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	// The Deployments' own labels select them for the rollout.
	stable, err := client.AppsV1().Deployments(c.namespace).Get(ctx, c.stable, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("stable Deployment %s/%s: %w", c.namespace, c.stable, err)
	}
	var canary *appsv1.Deployment
	if c.image != "" {
		canary, err = applyCanary(ctx, rc, stable, c.image)
	} else {
		canary, err = client.AppsV1().Deployments(c.namespace).Get(ctx, c.canary, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("canary Deployment %s/%s: %w", c.namespace, c.canary, err)
	}
	var split []replicas.Option
	if c.total != 0 { // WithTotal refuses a negative total
		split = append(split, replicas.WithTotal(int32(c.total)))
	}
	router, err := replicas.New(rc, replicas.Workload{Namespace: c.namespace, Service: c.service, Stable: c.stable, Canary: c.canary}, split...)
	if err != nil {
		return err
	}
	metrics, err := prometheus.New(c.prometheus, prometheus.WithTimeout(min(c.interval, 30*time.Second)))
	if err != nil {
		return err
	}
	check := analysis.SuccessRate(metrics, c.metrics, c.minSuccess, analysis.Window(c.window))
	check.Count, check.Interval = c.count, c.interval
	var steps []rollout.Step
	for _, w := range c.steps {
		steps = append(steps, rollout.SetWeight(w), rollout.Analysis(check))
	}
	key, err := os.ReadFile(c.stateKeyFile)
	if err != nil {
		return fmt.Errorf("state key: %w", err)
	}
	p := &printer{out: out, client: client, c: c}
	opts := []rollout.Option{rollout.WithObserver(p), rollout.WithStateKey(key)}
	if c.pauseOnMissing {
		opts = append(opts, rollout.OnInconclusive(rollout.PauseOnInconclusive))
	}
	r, err := rollout.NewCanary(rc, rollout.Canary{
		Name: c.name, Namespace: c.namespace,
		StableSelector: stable.Labels, CanarySelector: canary.Labels,
		Router: router, Services: []string{c.service}, Steps: steps,
	}, opts...)
	if err != nil {
		return err
	}
	p.printf("canary %s/%s: %s (%s) → %s (%s), success rate of {%s} ≥ %v\n", c.namespace, c.name,
		c.stable, image(stable.Spec.Template.Spec.Containers), c.canary, image(canary.Spec.Template.Spec.Containers), c.metrics, c.minSuccess)
	res, err := r.Run(ctx)
	if res != nil {
		p.summary(res)
	}
	if err != nil {
		return err
	}
	if res.Phase != rollout.Promoted {
		return fmt.Errorf("%w: %s: %s", errNotPromoted, res.Phase, res.Message)
	}
	return nil
}

// applyCanary makes the canary of a new release from the stable Deployment: its pod
// template with image in the first container, named and labelled by
// rollout.CanaryDeployment, applied server-side with the same *rest.Config as the
// router and the rollout. The canary's fields are this command's (Force); its
// replicas are left to the rollout.
func applyCanary(ctx context.Context, rc *rest.Config, stable *appsv1.Deployment, image string) (*appsv1.Deployment, error) {
	release := stable.DeepCopy()
	if len(release.Spec.Template.Spec.Containers) == 0 {
		return nil, errors.New("the stable Deployment has no container to give the image")
	}
	release.Spec.Template.Spec.Containers[0].Image = image
	canary, err := rollout.CanaryDeployment(release)
	if err != nil {
		return nil, err
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(canary)
	if err != nil {
		return nil, err
	}
	m, err := apply.New(rc, apply.Options{FieldManager: "shipkit-canary", Force: true})
	if err != nil {
		return nil, err
	}
	if _, err := m.Apply(ctx, []*unstructured.Unstructured{{Object: obj}}); err != nil {
		return nil, err
	}
	return canary, nil
}

// restConfig loads a kubeconfig the way kubectl does.
func restConfig(path, context string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

// image returns the first container's image.
func image(containers []corev1.Container) string {
	if len(containers) == 0 {
		return "no containers"
	}
	return containers[0].Image
}

// printer prints the rollout's steps and the canary's measurements as they happen.
type printer struct {
	mu     sync.Mutex
	out    io.Writer
	client kubernetes.Interface
	c      config
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format, args...)
}

// Observe prints rollout steps and analysis measurements.
func (p *printer) Observe(e observe.Event) {
	switch {
	case e.Stage == rollout.Stage && e.Phase == observe.Started && strings.HasPrefix(e.Step, "step "):
		p.printf("%s\n", e.Step)
	case e.Stage == rollout.Stage && e.Phase == observe.Finished && strings.Contains(e.Step, "setWeight"):
		p.printf("    %s (%s)\n", e.Message, p.replicas())
	case e.Stage == rollout.Stage && e.Phase == observe.Failed:
		p.printf("    %s\n", e.Message)
	case e.Stage == rollout.Stage && e.Phase == observe.Finished:
		p.printf("%s: %s\n", e.Step, e.Message)
	case e.Stage == analysis.Stage && e.Phase == observe.Progress:
		p.printf("    %s %d/%d: %s\n", e.Step, e.Done, e.Total, e.Message)
	}
}

// replicas says how the Deployments share the replicas now.
func (p *printer) replicas() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var parts []string
	for _, name := range []string{p.c.stable, p.c.canary} {
		d, err := p.client.AppsV1().Deployments(p.c.namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		n := int32(1)
		if d.Spec.Replicas != nil {
			n = *d.Spec.Replicas
		}
		parts = append(parts, fmt.Sprintf("%s %d", name, n))
	}
	return "replicas: " + strings.Join(parts, ", ")
}

// summary prints one line per step: its weight and the canary's success rates.
func (p *printer) summary(res *rollout.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.out)
	tw := tabwriter.NewWriter(p.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tACTION\tWEIGHT\tSUCCESS RATE\tPHASE\tTIME")
	for _, s := range res.Steps {
		metric := "-"
		if s.Analysis != nil {
			var vs []string
			for _, m := range s.Analysis.Measurements {
				vs = append(vs, strconv.FormatFloat(m.Value, 'f', 3, 64))
			}
			metric = strings.Join(vs, " ")
		}
		fmt.Fprintf(tw, "%d\t%s\t%d%%\t%s\t%s\t%s\n", s.Index+1, s.Step, s.Weight, metric, s.Phase, s.Duration().Round(time.Millisecond))
	}
	_ = tw.Flush()
	fmt.Fprintf(p.out, "\n%s: %s (%s)\n", res.Phase, res.Message, res.Finished.Sub(res.Started).Round(time.Millisecond))
}
