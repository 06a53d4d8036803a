package apply_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/observe"
)

const shaB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

// revision renders revision rev of a Deployment (and a ConfigMap). A bad revision
// runs another image on a node that does not exist, so its rollout exceeds its
// progress deadline of two seconds, and adds a ConfigMap.
func revision(t *testing.T, rev string, bad bool) []*unstructured.Unstructured {
	t.Helper()
	image, nodeSelector, extra := "registry.example/web@"+sha, "", ""
	if bad {
		image, nodeSelector = "registry.example/web@"+shaB, "\n      nodeSelector: {no-such-node: \"true\"}"
		extra = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\ndata: {added: by-bad}\n"
	}
	objs, err := render.Parse("rev.yaml", []byte(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  progressDeadlineSeconds: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:%s
      containers: [{name: web, image: %q}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {rev: %q}
%s`, nodeSelector, image, rev, extra)))
	require.NoError(t, err)
	for _, o := range objs {
		o.SetAnnotations(map[string]string{deploy.RevisionAnnotation: rev})
	}
	return objs
}

// TestRollback applies a good revision, then a bad one whose rollout exceeds its
// progress deadline: Apply rolls back to the good spec (and prunes what the bad one
// added). Then the bad revision is applied without rollback, and a new Manager (a
// new process) rolls back from what the ApplySet keeps.
func TestRollback(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	ctx := t.Context()
	set := &apply.ApplySet{Name: "web", Namespace: ns}
	var (
		mu     sync.Mutex
		events []observe.Event
	)
	obs := observe.ObserverFunc(func(e observe.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	})
	opts := rollbackOptions(ns, set)
	opts.Observer = obs
	m, err := apply.New(c.RESTConfig(), opts)
	require.NoError(t, err)

	_, err = m.Rollback(ctx)
	require.ErrorIs(t, err, apply.ErrNoRevision, "nothing applied yet")

	_, err = m.Apply(ctx, revision(t, "1", false))
	require.NoError(t, err)
	kept, err := c.Clientset().CoreV1().Secrets(ns).Get(ctx, "web"+apply.RevisionSecretSuffix, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "1", kept.Annotations[apply.LastGoodRevisionAnnotation])
	assert.NotEmpty(t, kept.Data[apply.RevisionDataKey])
	assert.NotEmpty(t, kept.Annotations[apply.RevisionSealAnnotation], "the kept revision is sealed")
	assert.Empty(t, kept.Labels[apply.ApplySetPartOfLabel], "the kept revision is not a member, so never pruned")

	start := time.Now()
	_, err = m.Apply(ctx, revision(t, "2", true))
	var rolledBack *apply.RolledBackError
	require.ErrorAs(t, err, &rolledBack)
	var failed *apply.RolloutError
	require.ErrorAs(t, err, &failed, "the rollout's own error is reachable")
	assert.NoError(t, rolledBack.RollbackErr)
	assert.Equal(t, "1", rolledBack.Revision)
	assert.Less(t, time.Since(start), 50*time.Second)
	t.Logf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
	assertRevision(t, c.Clientset(), ns, "1")
	_, err = c.Clientset().CoreV1().ConfigMaps(ns).Get(ctx, "extra", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the rollback pruned what the bad revision added: %v", err)

	mu.Lock()
	var steps []string
	for _, e := range events {
		if e.Phase == observe.Started || e.Phase == observe.Finished || e.Phase == observe.Failed {
			steps = append(steps, e.Step+" "+e.Phase.String())
		}
		assert.Equal(t, "deploy", e.Stage)
	}
	mu.Unlock()
	assert.True(t, isSubsequence([]string{
		"apply started", "apply finished", "wait started", "wait finished", "prune started", "prune finished", // revision 1
		"apply started", "apply finished", "wait started", "wait failed", // revision 2
		"rollback started", "apply started", "apply finished", "wait started", "wait finished", "rollback finished",
	}, steps), "%v", steps)

	// Without Rollback the failed rollout stays (and keeps nothing); a new process
	// rolls it back to what the last Manager with Rollback kept.
	noRollback := opts
	noRollback.Rollback, noRollback.Observer = false, nil
	m2, err := apply.New(c.RESTConfig(), noRollback)
	require.NoError(t, err)
	_, err = m2.Apply(ctx, revision(t, "3", true))
	require.ErrorAs(t, err, &failed)
	assert.NotErrorAs(t, err, &rolledBack)
	m3, err := apply.New(c.RESTConfig(), noRollback)
	require.NoError(t, err)
	cs, err := m3.Rollback(ctx)
	require.NoError(t, err)
	assert.Equal(t, deploy.Configured, change(t, cs, "Deployment", "web").Action)
	assertRevision(t, c.Clientset(), ns, "1")
}

// isSubsequence reports whether want appears in got in order, not necessarily
// next to each other.
func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// assertRevision checks that the good revision's spec is back and healthy.
func assertRevision(t *testing.T, client kubernetes.Interface, ns, rev string) {
	t.Helper()
	d, err := client.AppsV1().Deployments(ns).Get(t.Context(), "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "registry.example/web@"+sha, d.Spec.Template.Spec.Containers[0].Image)
	assert.Empty(t, d.Spec.Template.Spec.NodeSelector)
	assert.Equal(t, rev, d.Annotations[deploy.RevisionAnnotation])
	assert.EqualValues(t, 1, d.Status.AvailableReplicas)
	cm, err := client.CoreV1().ConfigMaps(ns).Get(t.Context(), "settings", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, rev, cm.Data["rev"])
}
