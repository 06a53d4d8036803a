package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/fleet"
	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/observe"
)

// Two real control planes, started on first use.
var (
	east = testbed.Lazy[*kube.Cluster]{Start: kube.Start}
	west = testbed.Lazy[*kube.Cluster]{Start: kube.Start}
)

func TestMain(m *testing.M) {
	code := m.Run()
	east.Stop()
	west.Stop()
	os.Exit(code)
}

const sha = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// set renders a namespace, a ConfigMap and a Deployment into namespace ns.
func set(t *testing.T, ns, color string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := render.Parse("set.yaml", []byte(fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: %[1]s}
data: {color: %[2]s}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: %[1]s}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "registry.example/web@%[3]s"}]
`, ns, color, sha)))
	require.NoError(t, err)
	return objs
}

// namespace returns a name unused in both clusters and deletes it from both at the end.
func namespace(t *testing.T, clusters ...*kube.Cluster) string {
	t.Helper()
	ns := fmt.Sprintf("fleet-%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), time.Now().UnixNano()%1e6)
	t.Cleanup(func() {
		for _, c := range clusters {
			_ = c.Clientset().CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
		}
	})
	return ns
}

// kubeconfig writes one kubeconfig with a context per cluster, named as given.
func kubeconfig(t *testing.T, clusters map[string]*kube.Cluster) string {
	t.Helper()
	merged := clientcmdapi.NewConfig()
	for name, c := range clusters {
		cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
		require.NoError(t, err)
		kctx := cfg.Contexts[c.Context]
		require.NotNil(t, kctx)
		merged.Clusters[name] = cfg.Clusters[kctx.Cluster]
		merged.AuthInfos[name] = cfg.AuthInfos[kctx.AuthInfo]
		merged.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*merged, path))
	return path
}

// TestApplyToTwoClusters applies one set to two control planes named by kubeconfig
// contexts, concurrently; each becomes healthy and gets the same objects; a second
// run changes nothing; a plan of a change shows it in both.
func TestApplyToTwoClusters(t *testing.T) {
	e, w := east.Get(t), west.Get(t)
	ns := namespace(t, e, w)
	path := kubeconfig(t, map[string]*kube.Cluster{"east": e, "west": w})

	var (
		mu    sync.Mutex
		steps = map[string]bool{}
	)
	obs := observe.ObserverFunc(func(ev observe.Event) {
		mu.Lock()
		defer mu.Unlock()
		steps[ev.Step] = true
	})
	clusters, err := fleet.FromKubeconfig(path, []string{"east", "west"},
		apply.Options{Wait: time.Minute, ApplySet: &apply.ApplySet{Name: "web", Namespace: ns}, Prune: true, Observer: obs})
	require.NoError(t, err)

	results, err := fleet.Apply(t.Context(), clusters, set(t, ns, "blue"), fleet.Options{Concurrency: 2, Observer: obs})
	require.NoError(t, err)
	require.Len(t, results, 2)
	for i, name := range []string{"east", "west"} {
		r := results[i]
		assert.Equal(t, name, r.Cluster)
		require.NoError(t, r.Err)
		assert.Equal(t, 3, r.Changes.Count(deploy.Created), "%s: %v", name, r.Changes)
		t.Logf("%s: apply and wait took %s", name, r.Duration.Round(time.Millisecond))
	}
	for _, c := range []*kube.Cluster{e, w} {
		d, err := c.Clientset().AppsV1().Deployments(ns).Get(t.Context(), "web", metav1.GetOptions{})
		require.NoError(t, err)
		assert.EqualValues(t, 1, d.Status.AvailableReplicas)
	}
	mu.Lock()
	for _, s := range []string{"fleet", "apply east", "apply west", "wait east", "wait west"} {
		assert.True(t, steps[s], "no %q events in %v", s, steps)
	}
	mu.Unlock()

	results, err = fleet.Apply(t.Context(), clusters, set(t, ns, "blue"), fleet.Options{})
	require.NoError(t, err)
	for _, r := range results {
		assert.False(t, r.Changes.Changed(), "%s: %v", r.Cluster, r.Changes)
	}

	results, err = fleet.Plan(t.Context(), clusters, set(t, ns, "green"), fleet.Options{})
	require.NoError(t, err)
	for _, r := range results {
		assert.Equal(t, 1, r.Changes.Count(deploy.Configured), "%s: %v", r.Cluster, r.Changes)
	}
}

// TestStopOnFailure: west holds a field another manager owns, so applying there
// conflicts. Without StopOnFailure east is still applied and the error names west;
// with it (one cluster at a time, west first) east is skipped and left untouched.
func TestStopOnFailure(t *testing.T) {
	e, w := east.Get(t), west.Get(t)
	ns := namespace(t, e, w)
	_, err := w.Clientset().CoreV1().Namespaces().Apply(t.Context(), corev1ac.Namespace(ns), metav1.ApplyOptions{FieldManager: "test"})
	require.NoError(t, err)
	_, err = w.Clientset().CoreV1().ConfigMaps(ns).Apply(t.Context(),
		corev1ac.ConfigMap("settings", ns).WithData(map[string]string{"color": "red"}), metav1.ApplyOptions{FieldManager: "someone-else"})
	require.NoError(t, err)

	manager := func(c *kube.Cluster) deploy.Applier {
		m, err := apply.New(c.RESTConfig(), apply.Options{})
		require.NoError(t, err)
		return m
	}
	clusters := []fleet.Cluster{{Name: "west", Applier: manager(w)}, {Name: "east", Applier: manager(e)}}

	results, err := fleet.Apply(t.Context(), clusters, set(t, ns, "blue"), fleet.Options{Concurrency: 1, StopOnFailure: true})
	var fe *fleet.Error
	require.ErrorAs(t, err, &fe)
	var conflict *apply.ConflictError
	assert.ErrorAs(t, err, &conflict, "the cluster's own error is reachable")
	assert.ErrorIs(t, results[1].Err, fleet.ErrSkipped)
	assert.Nil(t, results[1].Changes)
	_, err = e.Clientset().CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "east was not touched: %v", err)
	assert.Contains(t, fe.Error(), "1 of 2 clusters failed, 1 skipped: west: ")
	t.Log(fe)

	results, err = fleet.Apply(t.Context(), clusters, set(t, ns, "blue"), fleet.Options{Concurrency: 1})
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Failed, 1)
	assert.Equal(t, "west", fe.Failed[0].Cluster)
	assert.NoError(t, results[1].Err)
	assert.Equal(t, 3, results[1].Changes.Count(deploy.Created))
}

// errApplier fails or blocks, to test the fleet's bookkeeping without clusters.
type errApplier struct {
	err   error
	block bool
}

func (a errApplier) Apply(ctx context.Context, _ []*unstructured.Unstructured) (*deploy.ChangeSet, error) {
	if a.block {
		<-ctx.Done()
		return &deploy.ChangeSet{}, ctx.Err()
	}
	return &deploy.ChangeSet{}, a.err
}

func TestFleetUnit(t *testing.T) {
	boom := errors.New("boom")
	t.Run("stop cancels the running", func(t *testing.T) {
		results, err := fleet.Apply(t.Context(), []fleet.Cluster{
			{Name: "slow", Applier: errApplier{block: true}},
			{Name: "bad", Applier: errApplier{err: boom}},
			{Name: "later", Applier: errApplier{}},
		}, nil, fleet.Options{Concurrency: 2, StopOnFailure: true})
		require.ErrorIs(t, err, boom)
		assert.ErrorIs(t, results[0].Err, context.Canceled)
		assert.ErrorIs(t, results[2].Err, fleet.ErrSkipped)
	})
	t.Run("caller cancels", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		results, err := fleet.Apply(ctx, []fleet.Cluster{{Name: "a", Applier: errApplier{}}}, nil, fleet.Options{})
		require.Error(t, err)
		assert.ErrorIs(t, results[0].Err, context.Canceled)
	})
	t.Run("bad clusters", func(t *testing.T) {
		for _, cs := range [][]fleet.Cluster{
			{{Applier: errApplier{}}},
			{{Name: "a"}},
			{{Name: "a", Applier: errApplier{}}, {Name: "a", Applier: errApplier{}}},
		} {
			_, err := fleet.Apply(t.Context(), cs, nil, fleet.Options{})
			assert.Error(t, err)
		}
	})
	t.Run("plan needs a planner", func(t *testing.T) {
		_, err := fleet.Plan(t.Context(), []fleet.Cluster{{Name: "a", Applier: errApplier{}}}, nil, fleet.Options{})
		assert.ErrorContains(t, err, "cannot plan")
	})
	t.Run("contexts", func(t *testing.T) {
		_, err := fleet.FromKubeconfig("", nil, apply.Options{})
		assert.ErrorContains(t, err, "at least one")
		path := filepath.Join(t.TempDir(), "kubeconfig")
		require.NoError(t, clientcmd.WriteToFile(*clientcmdapi.NewConfig(), path))
		_, err = fleet.FromKubeconfig(path, []string{"nope"}, apply.Options{})
		assert.ErrorContains(t, err, `no context "nope"`)
	})
}
