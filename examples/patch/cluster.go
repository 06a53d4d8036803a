package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/mesh/replicas"
)

// The application's workload in every cluster.
const (
	namespace = "shop"
	workload  = "web"
	// replicasTotal is how many pods the stable and the canary Deployment share.
	replicasTotal = 4
	// fieldManager applies the objects, as the main job's "shipkit-pipeline" does.
	fieldManager = "shipkit-patch"
	// waitFor bounds each apply's wait for healthy workloads and each rollout step.
	waitFor = 2 * time.Minute
)

// objects are the application's manifests with image: the namespace, a
// Deployment that selects its pods by track (so a canary can run beside it) and a
// Service over both.
func objects(image name.Digest) ([]*unstructured.Unstructured, error) {
	return render.Parse("web.yaml", fmt.Appendf(nil, `apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[2]s, namespace: %[1]s, labels: {app: %[2]s, track: stable}}
spec:
  replicas: %[4]d
  selector: {matchLabels: {app: %[2]s, track: stable}}
  template:
    metadata: {labels: {app: %[2]s, track: stable}}
    spec:
      containers: [{name: %[2]s, image: %[3]q, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  selector: {app: %[2]s}
  ports: [{port: 80, targetPort: 8080}]
`, namespace, workload, image.String(), replicasTotal))
}

// applyAll applies objs to the cluster of cfg and waits until its workloads are
// healthy (kwok runs their pods), as the main job's deploy stage does.
func applyAll(ctx context.Context, cfg *rest.Config, objs []*unstructured.Unstructured, force bool) (*deploy.ChangeSet, error) {
	m, err := apply.New(cfg, apply.Options{FieldManager: fieldManager, Wait: waitFor, Force: force})
	if err != nil {
		return nil, err
	}
	return m.Apply(ctx, objs)
}

// canary releases objs (the next version of the running ones) as the main job's
// rollout stage does: a canary Deployment beside the stable one, then mesh/replicas
// moves its share of the pods up in weight steps, and the rollout promotes it (the
// stable Deployment takes the canary's pod template). The steps have no metric
// analysis: the test bed's pods serve no traffic to measure; the gate before it
// judged the image.
func canary(ctx context.Context, cfg *rest.Config, objs []*unstructured.Unstructured) (*rollout.Result, error) {
	var release []*unstructured.Unstructured
	var stable *unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			stable = o
			continue
		}
		release = append(release, o)
	}
	c, err := rollout.CanaryObject(stable)
	if err != nil {
		return nil, err
	}
	// The router gives the canary its share at the first step.
	if err := unstructured.SetNestedField(c.Object, int64(0), "spec", "replicas"); err != nil {
		return nil, err
	}
	if _, err := applyAll(ctx, cfg, append(release, c), true); err != nil {
		return nil, fmt.Errorf("canary Deployment: %w", err)
	}
	router, err := replicas.New(cfg, replicas.Workload{Namespace: namespace, Service: workload, Stable: workload, Canary: c.GetName()},
		replicas.WithTotal(replicasTotal))
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails
	r, err := rollout.NewCanary(cfg, rollout.Canary{
		Name: workload, Namespace: namespace,
		StableSelector: stable.GetLabels(), CanarySelector: c.GetLabels(),
		Router: router, Services: []string{workload},
		Steps: []rollout.Step{rollout.SetWeight(25), rollout.SetWeight(50), rollout.SetWeight(100)},
	}, rollout.WithReadyTimeout(waitFor), rollout.WithPollInterval(200*time.Millisecond), rollout.WithStateKey(key))
	if err != nil {
		return nil, err
	}
	res, err := r.Run(ctx)
	if err != nil {
		return nil, err
	}
	if res.Phase != rollout.Promoted {
		return res, fmt.Errorf("canary %s: %s", res.Phase, res.Message)
	}
	return res, nil
}

// waitRunning waits until every pod of the namespace runs image, and at least
// want do: what a promotion or a plain apply leaves once the old pods are gone.
func waitRunning(ctx context.Context, cfg *rest.Config, image string, want int) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	var last string
	for {
		pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
		if err == nil {
			running, other := 0, 0
			for _, p := range pods.Items {
				switch {
				case p.Spec.Containers[0].Image == image && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil:
					running++
				default:
					other++
				}
			}
			if running >= want && other == 0 {
				return nil
			}
			last = fmt.Sprintf("%d pods run it, %d others", running, other)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pods of %s not all on %s: %s: %w", namespace, image, last, context.Cause(ctx))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// childRSS sums the resident memory of this process's child processes by
// command name (kube-apiserver, etcd, kwok, ...), in bytes: what the control
// planes the test bed started cost. Linux only; elsewhere it returns nil.
func childRSS() map[string]int64 {
	self := strconv.Itoa(os.Getpid())
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	out := map[string]int64{}
	for _, st := range stats {
		data, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
		i := bytes.LastIndexByte(data, ')')
		j := bytes.IndexByte(data, '(')
		if i < 0 || j < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 2 || f[1] != self {
			continue
		}
		comm := string(data[j+1 : i])
		if rss := vmRSS(filepath.Join(filepath.Dir(st), "status")); rss > 0 {
			out[comm] += rss
		}
	}
	return out
}

// vmRSS reads VmRSS from a /proc/<pid>/status file, in bytes.
func vmRSS(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
