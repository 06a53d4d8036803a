package job

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"

	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/mesh/replicas"
	"github.com/shipkit/shipkit/observe/analysis"
	"github.com/shipkit/shipkit/observe/prometheus"
)

// release is how the deploy stage shipped a canary release: the stable Deployment
// it left alone, the canary it applied beside it, and the Service over both.
type release struct {
	namespace, stable, canary, service string
	// stableLabels and canaryLabels select the two Deployments for the rollout.
	stableLabels, canaryLabels map[string]string
}

// canaryPlan is the canary release the objects make: their stable Deployment and
// Service, and the canary Deployment derived from the stable one, in the namespace
// apply puts them in. The gate judges canary beside the objects; the deploy stage
// applies that same object when stable already runs.
type canaryPlan struct {
	namespace       string
	stable, service *unstructured.Unstructured
	canary          *unstructured.Unstructured
}

// planCanary derives the canary release from the rendered objects, before the
// cluster is asked anything: exactly one Deployment and a Service in its namespace,
// and the canary Deployment of the stable one (rollout.CanaryObject:
// "<name>-canary", track=canary, no replicas: the rollout scales it). Its errors
// say they are the -prometheus rollout's and where the objects came from.
func (j *Job) planCanary() (*canaryPlan, error) {
	var stable, service *unstructured.Unstructured
	var deployments int
	for _, o := range j.Objects {
		switch o.GetKind() {
		case "Deployment":
			deployments++
			stable = o
		case "Service":
			service = o
		}
	}
	switch {
	case deployments != 1:
		return nil, fmt.Errorf("%s: needs exactly one Deployment, %s has %d", canaryRollout, j.objectsFrom(), deployments)
	case service == nil:
		return nil, fmt.Errorf("%s: needs a Service beside the Deployment %s, %s has none", canaryRollout, stable.GetName(), j.objectsFrom())
	}
	// Where apply puts them: render placed the objects in the namespace apply uses,
	// and namespaceOf makes the same decision for objects that skipped render.
	ns := j.namespaceOf(stable)
	switch svcNS := j.namespaceOf(service); {
	case ns == "":
		return nil, fmt.Errorf("%s: the Deployment %s names no namespace and the job has none for it (Config.Namespace)", canaryRollout, stable.GetName())
	case svcNS != ns:
		return nil, fmt.Errorf("%s: needs the Service %s/%s in the Deployment's namespace %s", canaryRollout, svcNS, service.GetName(), ns)
	}
	placed := stable.DeepCopy()
	placed.SetNamespace(ns)
	canary, err := rollout.CanaryObject(placed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", canaryRollout, err)
	}
	return &canaryPlan{namespace: ns, stable: stable, service: service, canary: canary}, nil
}

// canaryRollout starts the errors of planCanary, naming the flag (and Config
// field) that asked for the canary.
const canaryRollout = "-prometheus canary rollout"

// objectsFrom says where the rendered objects came from, for messages.
func (j *Job) objectsFrom() string {
	switch {
	case j.cfg.Chart != "":
		return "the chart " + j.cfg.Chart
	case j.cfg.Overlay != "":
		return "the overlay " + j.cfg.Overlay
	default:
		return "the embedded overlay"
	}
}

// canaryObjects prepares a canary release: when the stable Deployment already runs
// in the cluster, the objects apply the canary the gate judged (planCanary) and
// leave the stable one as it is, for the rollout stage to promote. For a first
// release, nothing to compare with, they apply as they are and the release is nil.
func (j *Job) canaryObjects(ctx context.Context, client kubernetes.Interface) ([]*unstructured.Unstructured, *release, error) {
	if err := j.need("canary judged by the gate", j.canary != nil); err != nil {
		return nil, nil, err
	}
	p := j.canary
	_, err := client.AppsV1().Deployments(p.namespace).Get(ctx, p.stable.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return j.Objects, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("looking for the stable Deployment %s/%s: %w", p.namespace, p.stable.GetName(), err)
	}
	objs := []*unstructured.Unstructured{}
	for _, o := range j.Objects {
		if o != p.stable {
			objs = append(objs, o)
		}
	}
	return append(objs, p.canary), &release{
		namespace: p.namespace, stable: p.stable.GetName(), canary: p.canary.GetName(), service: p.service.GetName(),
		stableLabels: p.stable.GetLabels(), canaryLabels: p.canary.GetLabels(),
	}, nil
}

// rollout moves traffic to the canary in steps, by replica counts (mesh/replicas:
// no mesh needed), judging each step by the canary's success rate in Prometheus,
// then promotes it, or sends all traffic back to stable.
func (j *Job) rollout(ctx context.Context) (string, error) {
	if err := j.need("deployed release", j.Changes != nil); err != nil {
		return "", err
	}
	if j.release == nil {
		return "first release: deployed as stable, nothing to compare a canary with", nil
	}
	rc, err := j.restConfig()
	if err != nil {
		return "", err
	}
	r := j.release
	router, err := replicas.New(rc, replicas.Workload{Namespace: r.namespace, Service: r.service, Stable: r.stable, Canary: r.canary},
		replicas.WithLogger(j.log))
	if err != nil {
		return "", err
	}
	metrics, err := prometheus.New(j.cfg.Prometheus)
	if err != nil {
		return "", err
	}
	key, err := stateKey()
	if err != nil {
		return "", err
	}
	healthy := analysis.SuccessRate(metrics, j.cfg.CanarySelector, 0.99)
	// The first measurement comes one interval after the canary gets its share, as
	// Flagger's does: a canary that had no replicas until now has no requests in
	// Prometheus yet (a rate needs two scrapes), and at once its success rate is NaN,
	// an inconclusive analysis that aborts the rollout.
	healthy.Count, healthy.Interval, healthy.InitialDelay = 3, j.cfg.AnalysisInterval, j.cfg.AnalysisInterval
	c, err := rollout.NewCanary(rc, rollout.Canary{
		Name:           r.stable,
		Namespace:      r.namespace,
		StableSelector: r.stableLabels,
		CanarySelector: r.canaryLabels,
		Router:         router,
		Services:       []string{r.service},
		Steps: []rollout.Step{
			rollout.SetWeight(50), rollout.Analysis(healthy),
			rollout.SetWeight(100),
		},
	}, rollout.WithObserver(j.obs), rollout.WithLogger(j.log), rollout.WithReadyTimeout(j.cfg.Wait), rollout.WithStateKey(key))
	if err != nil {
		return "", err
	}
	res, err := c.Run(ctx)
	if err != nil {
		return "", err
	}
	j.Rollout = res
	if res.Phase != rollout.Promoted {
		return "", fmt.Errorf("canary %s: %s", res.Phase, res.Message)
	}
	return fmt.Sprintf("promoted in %s: %s", res.Finished.Sub(res.Started).Round(time.Millisecond), res.Message), nil
}

// StateKeyEnv names a file holding the key that authenticates the canary's state in
// the cluster (rollout.WithStateKey). Without it, the job keeps a key of its own in
// the user's configuration directory (shipkit/rollout-state.key), made on first use:
// every release from this machine shares it. A CI job sets StateKeyEnv to a file
// from its secrets, the same in every run.
const StateKeyEnv = "SHIPKIT_ROLLOUT_STATE_KEY_FILE"

// stateKey reads the rollout state key, making the default one if it is missing.
func stateKey() ([]byte, error) {
	if path := os.Getenv(StateKeyEnv); path != "" {
		key, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("rollout state key (%s): %w", StateKeyEnv, err)
		}
		return key, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return nil, fmt.Errorf("rollout state key: set %s: %w", StateKeyEnv, err)
	}
	path := filepath.Join(dir, "shipkit", "rollout-state.key")
	key, err := os.ReadFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key = make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("rollout state key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // another job made it meanwhile
		return os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("rollout state key: %w", err)
	}
	_, err = f.Write(key)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("rollout state key: %w", err)
	}
	return key, nil
}
