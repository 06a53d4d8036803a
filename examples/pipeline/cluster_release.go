package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/examples/pipeline/job"
	"github.com/shipkit/shipkit/mesh/netpol"
	"github.com/shipkit/shipkit/observe/analysis"
)

// withNetpol returns the job's stages with a netpol stage after render, so the
// NetworkPolicies are gated and applied with the release.
func withNetpol(j *job.Job) []job.Stage {
	var out []job.Stage
	for _, s := range j.Stages() {
		out = append(out, s)
		if s.Name == "render" {
			out = append(out, job.Stage{Name: "netpol", Run: func(context.Context) (string, error) { return addNetworkPolicies(j) }})
		}
	}
	return out
}

// addNetworkPolicies adds to the release's objects the NetworkPolicies that its
// Services' labels imply (mesh/netpol): everything in the namespace denied, in and
// out, but DNS, and the pods behind each Service open to anyone on its target ports.
func addNetworkPolicies(j *job.Job) (string, error) {
	p, err := policyFor(j.Objects)
	if err != nil {
		return "", err
	}
	objs, err := p.Objects()
	if err != nil {
		return "", err
	}
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = o.GetName()
	}
	j.Objects = append(j.Objects, objs...)
	return fmt.Sprintf("%d NetworkPolicies from the Service's selector and ports: %s (kwok runs no network plugin: applied, not enforced)",
		len(objs), strings.Join(names, ", ")), nil
}

// policyFor derives the network intent of a release from its Services.
func policyFor(objs []*unstructured.Unstructured) (netpol.Policy, error) {
	p := netpol.Policy{DenyEgress: true, AllowDNS: true, Labels: map[string]string{"app.kubernetes.io/managed-by": "shipkit"}}
	for _, o := range objs {
		if o.GetKind() != "Service" || o.GetAPIVersion() != "v1" {
			continue
		}
		var svc corev1.Service
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &svc); err != nil {
			return p, fmt.Errorf("netpol: Service %s/%s: %w", o.GetNamespace(), o.GetName(), err)
		}
		if len(svc.Spec.Selector) == 0 {
			continue // no pods of its own to open
		}
		if p.Namespace != "" && p.Namespace != svc.Namespace {
			return p, fmt.Errorf("netpol: Services in namespaces %s and %s, and one policy is for one namespace", p.Namespace, svc.Namespace)
		}
		p.Namespace = svc.Namespace
		var ports []netpol.Port
		for _, sp := range svc.Spec.Ports {
			switch tp := sp.TargetPort; {
			case tp.Type == intstr.String:
				ports = append(ports, netpol.Port{Name: tp.StrVal, Protocol: sp.Protocol})
			case tp.IntVal != 0:
				ports = append(ports, netpol.Port{Port: tp.IntVal, Protocol: sp.Protocol})
			default: // the target port defaults to the port
				ports = append(ports, netpol.Port{Port: sp.Port, Protocol: sp.Protocol})
			}
		}
		p.Ingress = append(p.Ingress, netpol.Ingress{
			To:    labels.SelectorFromSet(svc.Spec.Selector).String(),
			From:  []netpol.Peer{netpol.Anywhere},
			Ports: ports,
		})
	}
	if len(p.Ingress) == 0 {
		return p, errors.New("netpol: no Service with a selector to derive NetworkPolicies from")
	}
	return p, nil
}

// changedSource copies the service's source to a directory of the same name in a
// new temporary one (the job names the app after it) and changes its English
// greeting there, so the release builds to a new digest. The caller removes the
// returned temporary directory, the source's parent.
func changedSource(src, greeting string) (string, error) {
	tmp, err := os.MkdirTemp("", "shipkit-release-")
	if err != nil {
		return "", err
	}
	dir := filepath.Join(tmp, filepath.Base(src))
	found := false
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		found = found || strings.HasSuffix(p, ".go") && bytes.Contains(data, []byte("var greetings = map[string]string{"))
		return os.WriteFile(dst, data, 0o644)
	})
	if err == nil && !found {
		err = fmt.Errorf("-cluster local changes the greetings of examples/hello for v2 and v3, and %s has none", src)
	}
	if err == nil {
		change := fmt.Sprintf("// Written by the pipeline's local mode (-cluster local): this release's change.\n\n"+
			"package main\n\nfunc init() { greetings[\"en\"] = %q }\n", greeting)
		err = os.WriteFile(filepath.Join(dir, "release.go"), []byte(change), 0o644)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("changing the source: %w", err)
	}
	return tmp, nil
}

// expectRollback runs the rollout stage of the bad release, which must end in a
// rollback on a failed measurement, and says how long the traffic took to leave the
// canary: from the failed measurement to the canary's weight 0 (the router's replica
// count of the canary Deployment at 0, as the API server reports it).
func (r *localRun) expectRollback(ctx context.Context, j *job.Job, s job.Stage, w *weightWatch) (string, error) {
	_, err := s.Run(ctx)
	res := j.Rollout
	switch {
	case err == nil:
		return "", errors.New("the bad release was promoted")
	case res == nil || res.Phase != rollout.Aborted:
		return "", err
	}
	breach, ok := firstFailed(res)
	if !ok {
		return "", fmt.Errorf("rolled back, but not on a failed measurement: %s", res.Message)
	}
	zero, err := w.zeroAfter(ctx, breach.Time, 30*time.Second)
	if err != nil {
		return "", err
	}
	r.breachToZero = zero.Sub(breach.Time)
	return fmt.Sprintf("rolled back: %s measured %.3f (%s); breach seen → weight 0 in %s",
		breach.Check, breach.Value, breach.Phase, r.breachToZero.Round(time.Millisecond)), nil
}

// firstFailed returns the first failed measurement of a rollout's analyses.
func firstFailed(res *rollout.Result) (analysis.Measurement, bool) {
	for _, s := range res.Steps {
		if s.Analysis == nil {
			continue
		}
		for _, m := range s.Analysis.Measurements {
			if m.Phase == analysis.Failed {
				return m, true
			}
		}
	}
	return analysis.Measurement{}, false
}

// weightWatch records the replica counts of a canary Deployment as the API server
// reports them: with mesh/replicas the canary's weight is 0 when its count is.
type weightWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	counts []replicaCount
	err    error
}

type replicaCount struct {
	at       time.Time
	replicas int32
}

// watchCanaryWeight starts watching the Deployment name in namespace.
func watchCanaryWeight(ctx context.Context, client kubernetes.Interface, namespace, name string) *weightWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &weightWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		wi, err := client.AppsV1().Deployments(namespace).Watch(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(),
		})
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		defer wi.Stop()
		for ev := range wi.ResultChan() {
			if d, ok := ev.Object.(*appsv1.Deployment); ok {
				w.mu.Lock()
				w.counts = append(w.counts, replicaCount{at: time.Now(), replicas: replicasOf(d)})
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// zeroAfter returns when the canary's replica count was first seen at 0 after t,
// waiting up to timeout for it.
func (w *weightWatch) zeroAfter(ctx context.Context, t time.Time, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		i := slices.IndexFunc(w.counts, func(c replicaCount) bool { return c.replicas == 0 && !c.at.Before(t) })
		var at time.Time
		if i >= 0 {
			at = w.counts[i].at
		}
		err := w.err
		w.mu.Unlock()
		switch {
		case i >= 0:
			return at, nil
		case err != nil:
			return time.Time{}, fmt.Errorf("watching the canary's replicas: %w", err)
		case time.Now().After(deadline):
			return time.Time{}, fmt.Errorf("the canary's replicas were not seen at 0 within %s of the breach", timeout)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// stop ends the watch; a nil watch does nothing.
func (w *weightWatch) stop() {
	if w == nil {
		return
	}
	w.cancel()
	<-w.done
}

// stableAvailable waits until the stable Deployment is Available with every replica
// the rollback gave back to it (a rollback scales stable up and does not wait), and
// returns its image and how long that took.
func (r *localRun) stableAvailable(ctx context.Context) (string, time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, r.o.cfg.Wait)
	defer cancel()
	for {
		d, err := r.client.AppsV1().Deployments(r.namespace()).Get(ctx, "hello", metav1.GetOptions{})
		switch {
		case err != nil:
			return "", 0, fmt.Errorf("stable Deployment: %w", err)
		case len(d.Spec.Template.Spec.Containers) == 0:
			return "", 0, errors.New("stable Deployment: no containers")
		case d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == replicasOf(d) &&
			d.Status.UpdatedReplicas == replicasOf(d) && deploymentAvailable(d):
			return d.Spec.Template.Spec.Containers[0].Image, time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return "", 0, fmt.Errorf("stable Deployment not Available after the rollback: %w", context.Cause(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// replicasOf returns a Deployment's desired replicas (the API's default is 1).
func replicasOf(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// deploymentAvailable reports whether a Deployment's Available condition is true.
func deploymentAvailable(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// shortDigest abbreviates "sha256:<64 hex>" to its first 12 hex digits.
func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}
