package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/fleet"
	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/internal/testbed/registry"
)

// push writes a random image to host/repo:tag and returns its reference by digest.
func push(t *testing.T, host, repo, tag string) string {
	t.Helper()
	img, err := random.Image(512, 1)
	require.NoError(t, err)
	ref, err := name.NewTag(host + "/" + repo + ":" + tag)
	require.NoError(t, err)
	require.NoError(t, remote.Write(ref, img, remote.WithContext(t.Context())))
	h, err := img.Digest()
	require.NoError(t, err)
	return ref.Context().Digest(h.String()).Name()
}

// applyObjs applies objs to c and waits until its workloads are available (kwok
// runs their pods).
func applyObjs(t *testing.T, c *kube.Cluster, ns, yaml string) {
	t.Helper()
	objs, err := render.Parse("objs.yaml", []byte(yaml))
	require.NoError(t, err)
	m, err := apply.New(c.RESTConfig(), apply.Options{Wait: 2 * time.Minute})
	require.NoError(t, err)
	_, err = m.Apply(t.Context(), objs)
	require.NoError(t, err, "apply to %s", ns)
}

// reportImageIDs does what a kubelet does once a container runs: it records the
// digest it pulled as the container's imageID (the test bed's kwok reports one only
// for an image named by digest, having pulled nothing to resolve a tag). ids maps an
// image as the pod spec writes it to the digest.
func reportImageIDs(t *testing.T, c *kube.Cluster, ns string, ids map[string]string) {
	t.Helper()
	pods, err := c.Clientset().CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
	require.NoError(t, err)
	for _, p := range pods.Items {
		require.Equal(t, corev1.PodRunning, p.Status.Phase, "pod %s", p.Name)
		set := func(specs []corev1.Container, statuses []corev1.ContainerStatus) {
			for i := range statuses {
				for _, s := range specs {
					if s.Name == statuses[i].Name && ids[s.Image] != "" {
						statuses[i].ImageID = ids[s.Image]
					}
				}
			}
		}
		set(p.Spec.InitContainers, p.Status.InitContainerStatuses)
		set(p.Spec.Containers, p.Status.ContainerStatuses)
		_, err := c.Clientset().CoreV1().Pods(ns).UpdateStatus(t.Context(), &p, metav1.UpdateOptions{})
		require.NoError(t, err, "pod %s", p.Name)
	}
}

// countingTransport counts the requests that reach a registry: manifest HEADs,
// and reads of manifests or blobs.
type countingTransport struct{ heads, reads atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	content := strings.Contains(r.URL.Path, "/manifests/") || strings.Contains(r.URL.Path, "/blobs/")
	switch {
	case content && r.Method == http.MethodHead:
		c.heads.Add(1)
	case content:
		c.reads.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// only keeps the uses in namespace ns (the control planes are shared by the
// package's tests).
func only(ns string, uses []fleet.Use) []fleet.Use {
	var out []fleet.Use
	for _, u := range uses {
		if u.Workload.Namespace == ns {
			out = append(out, u)
		}
	}
	return out
}

// TestInventoryTwoClusters takes the inventory of two real control planes whose
// pods kwok runs, and of a third that cannot be reached: images running by digest
// (the imageID a kubelet reports), declared by tag and resolved through the
// registry once, deduplicated across clusters, each with its workloads (pods
// followed to their Deployment); a tag the registry does not have is reported,
// not dropped; the unreachable cluster fails alone.
func TestInventoryTwoClusters(t *testing.T) {
	e, w := east.Get(t), west.Get(t)
	ns := namespace(t, e, w)
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	web := push(t, host, "shop/web", "v1")    // east runs it by tag
	agent := push(t, host, "shop/agent", "x") // both clusters, by digest
	batch := push(t, host, "shop/batch", "v2")
	webTag := host + "/shop/web:v1"
	missing := host + "/shop/gone:v9"

	applyObjs(t, e, ns, fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: %[1]s}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers: [{name: agent, image: %[3]q}]
      containers: [{name: web, image: %[2]q}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: %[1]s}
spec:
  schedule: "0 3 * * *"
  suspend: true
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: job, image: %[4]q}]
`, ns, webTag, agent, missing))
	applyObjs(t, w, ns, fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: %[1]s}
spec:
  containers: [{name: agent, image: %[2]q}, {name: batch, image: %[3]q}]
`, ns, agent, host+"/shop/batch:v2"))
	reportImageIDs(t, e, ns, map[string]string{webTag: web})

	rt := &countingTransport{}
	targets := []fleet.Target{
		{Name: "east", Config: e.RESTConfig()},
		{Name: "west", Config: w.RESTConfig()},
		{Name: "gone", Config: &rest.Config{Host: "https://127.0.0.1:1", Timeout: 5 * time.Second}},
	}
	inv, err := fleet.TakeInventory(t.Context(), targets, fleet.InventoryOptions{
		Resolver: fleet.RegistryResolver(remote.WithTransport(rt)),
		PageSize: 2, // several pages per list
	})
	require.NoError(t, err)

	require.Len(t, inv.Clusters, 3)
	assert.Empty(t, inv.Clusters[0].Error)
	assert.Empty(t, inv.Clusters[1].Error)
	assert.NotEmpty(t, inv.Clusters[2].Error, "the unreachable cluster is reported")
	assert.ErrorContains(t, inv.Err(), "cluster gone")
	assert.Positive(t, inv.Clusters[0].Pods)
	assert.Contains(t, inv.Clusters[0].Resources, "deployments.apps")

	byDigest := map[string][]fleet.Use{}
	for _, img := range inv.Images {
		if u := only(ns, img.Uses); len(u) > 0 {
			byDigest[img.Digest] = u
		}
	}
	deployment := deploy.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: ns, Name: "web"}
	pod := deploy.ObjectRef{Kind: "Pod", Namespace: ns, Name: "agent"}
	assert.Equal(t, []fleet.Use{
		{Cluster: "east", Workload: deployment, Container: "web", Kind: deploy.ContainerImage, Image: webTag},
		{Cluster: "east", Workload: deployment, Container: "web", Kind: deploy.ContainerImage, Running: true, Pods: 2, Image: web},
	}, byDigest[web], "declared by tag (resolved) and running by the kubelet's imageID, pods counted under their Deployment")
	assert.Equal(t, []fleet.Use{
		{Cluster: "east", Workload: deployment, Container: "agent", Kind: deploy.ContainerImage, Image: agent},
		{Cluster: "east", Workload: deployment, Container: "agent", Kind: deploy.ContainerImage, Running: true, Pods: 2, Image: agent},
		{Cluster: "west", Workload: pod, Container: "agent", Kind: deploy.ContainerImage, Running: true, Pods: 1, Image: agent},
	}, byDigest[agent], "one image, used in two clusters")
	assert.Equal(t, []fleet.Use{
		{Cluster: "west", Workload: pod, Container: "batch", Kind: deploy.ContainerImage, Running: true, Pods: 1, Image: host + "/shop/batch:v2"},
	}, byDigest[batch], "no imageID: the pod spec's tag, resolved")
	assert.Len(t, byDigest, 3)

	var gone *fleet.Unresolved
	for i, u := range inv.Unresolved {
		if u.Image == missing {
			gone = &inv.Unresolved[i]
		}
	}
	require.NotNil(t, gone, "a tag the registry lacks is reported: %+v", inv.Unresolved)
	assert.Contains(t, gone.Reason, "resolve")
	assert.Equal(t, []fleet.Use{{Cluster: "east", Workload: deploy.ObjectRef{Group: "batch", Kind: "CronJob", Namespace: ns, Name: "nightly"},
		Container: "job", Kind: deploy.ContainerImage, Image: missing}}, only(ns, gone.Uses))

	assert.Zero(t, rt.reads.Load(), "tags are resolved by HEAD requests only (no manifest or blob read)")
	assert.EqualValues(t, 3, rt.heads.Load(), "each tag resolved once, though two pods and a template name the web tag")

	// The inventory is data: JSON and back gives the same inventory, but for the
	// clusters' errors, which keep their text.
	b, err := json.Marshal(inv)
	require.NoError(t, err)
	var back fleet.Inventory
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, inv.Images, back.Images)
	assert.Equal(t, inv.Unresolved, back.Unresolved)
	assert.Equal(t, inv.Clusters[2].Error, back.Clusters[2].Error)
	assert.Error(t, back.Err())
}

// TestInventoryKubeconfigAndBounds reads clusters named by kubeconfig contexts, and
// fails a cluster holding more objects than MaxObjects with ErrTooManyObjects.
func TestInventoryKubeconfigAndBounds(t *testing.T) {
	e := east.Get(t)
	path := kubeconfig(t, map[string]*kube.Cluster{"east": e})
	targets, err := fleet.TargetsFromKubeconfig(path, []string{"east"})
	require.NoError(t, err)
	inv, err := fleet.TakeInventory(t.Context(), targets, fleet.InventoryOptions{MaxObjects: 1, PageSize: 1})
	require.NoError(t, err)
	require.Len(t, inv.Clusters, 1)
	assert.ErrorIs(t, inv.Clusters[0].Err, fleet.ErrTooManyObjects)
	assert.ErrorIs(t, inv.Err(), fleet.ErrTooManyObjects)
}

// TestInventoryOptionsRefused: every bad option and target is named before any
// cluster is contacted.
func TestInventoryOptionsRefused(t *testing.T) {
	_, err := fleet.TakeInventory(context.Background(), []fleet.Target{{Name: "a"}, {Config: &rest.Config{}}},
		fleet.InventoryOptions{PageSize: -1, MaxObjects: -2, Concurrency: -3, ResolveConcurrency: -4})
	require.Error(t, err)
	assert.ErrorIs(t, err, deploy.ErrInvalidOption)
	for _, s := range []string{"PageSize -1", "MaxObjects -2", "Concurrency -3", "ResolveConcurrency -4", "cluster a has no REST config", "cluster 1 has no name"} {
		assert.Contains(t, err.Error(), s)
	}
}

// TestRegistryResolverDigestPassesThrough: a digest is returned as is, without a
// request; a registry that cannot be reached is an error.
func TestRegistryResolverDigestPassesThrough(t *testing.T) {
	d, err := name.NewDigest("example.com/a@sha256:" + strings.Repeat("a", 64))
	require.NoError(t, err)
	got, err := fleet.RegistryResolver().Resolve(t.Context(), d)
	require.NoError(t, err)
	assert.Equal(t, d, got)
	_, err = fleet.RegistryResolver().Resolve(t.Context(), name.MustParseReference("127.0.0.1:1/a:b"))
	assert.Error(t, err)
	assert.False(t, errors.Is(err, context.Canceled))
}
