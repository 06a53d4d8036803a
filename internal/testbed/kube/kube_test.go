package kube_test

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/kube"
)

var (
	startup time.Duration // how long the cluster took to start
	cluster = testbed.Lazy[*kube.Cluster]{Start: func() (*kube.Cluster, func(), error) {
		t0 := time.Now()
		c, stop, err := kube.Start()
		startup = time.Since(t0)
		return c, stop, err
	}}
)

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.Stop()
	os.Exit(code)
}

const (
	fieldManager = "shipkit-test"
	image        = "registry.example/app@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func TestClusterFromKubeconfig(t *testing.T) {
	c := cluster.Get(t)
	t.Logf("control plane started in %s", startup.Round(time.Millisecond))

	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: c.Kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: c.Context},
	).ClientConfig()
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)

	v, err := cs.Discovery().ServerVersion()
	require.NoError(t, err)
	assert.Equal(t, kube.KubernetesVersion, v.GitVersion)

	nodes, err := cs.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	require.NoError(t, err)
	var names []string
	for _, n := range nodes.Items {
		names = append(names, n.Name)
	}
	assert.ElementsMatch(t, c.Nodes, names)
}

func TestDeploymentBecomesAvailable(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	ctx := t.Context()

	deploy := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]any{"name": "app", "namespace": ns},
		"spec": map[string]any{
			"replicas": int64(2),
			"selector": map[string]any{"matchLabels": map[string]any{"app": "app"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "app"}},
				"spec": map[string]any{"containers": []any{
					map[string]any{"name": "app", "image": image},
				}},
			},
		},
	}}
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	_, err = dyn.Resource(gvr).Namespace(ns).Apply(ctx, "app", deploy, metav1.ApplyOptions{FieldManager: fieldManager})
	require.NoError(t, err)

	deployments := c.Clientset().AppsV1().Deployments(ns)
	got, err := deployments.Get(ctx, "app", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, image, got.Spec.Template.Spec.Containers[0].Image)
	assert.True(t, hasApplyManager(got.ManagedFields, fieldManager), "managed fields: %v", got.ManagedFields)

	start := time.Now()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		d, err := deployments.Get(ctx, "app", metav1.GetOptions{})
		require.NoError(ct, err)
		assert.Equal(ct, d.Generation, d.Status.ObservedGeneration)
		assert.EqualValues(ct, 2, d.Status.ReadyReplicas)
		assert.EqualValues(ct, 2, d.Status.AvailableReplicas)
		assert.True(ct, deploymentAvailable(d), "conditions: %v", d.Status.Conditions)
	}, 60*time.Second, 250*time.Millisecond)
	t.Logf("deployment available after %s", time.Since(start).Round(time.Millisecond))

	pods, err := c.Clientset().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=app"})
	require.NoError(t, err)
	require.Len(t, pods.Items, 2)
	for _, p := range pods.Items {
		assert.Contains(t, c.Nodes, p.Spec.NodeName, "pod %s", p.Name)
		assert.Equal(t, corev1.PodRunning, p.Status.Phase, "pod %s", p.Name)
		assert.NotEmpty(t, p.Status.PodIP, "pod %s", p.Name)
		assert.Equal(t, "default", p.Spec.ServiceAccountName, "pod %s", p.Name)
		// kwok plays the kubelet: a container running an image named by digest
		// reports that reference as its imageID, as containerd's CRI does.
		if assert.Len(t, p.Status.ContainerStatuses, 1, "pod %s", p.Name) {
			assert.Equal(t, image, p.Status.ContainerStatuses[0].ImageID, "pod %s", p.Name)
		}
	}
}

// TestImageIDByTag: an image named only by tag gets no imageID from the test bed
// (nothing is pulled, so no digest is known), where a real kubelet would report the
// digest it resolved; readers of imageIDs fall back to the pod spec.
func TestImageIDByTag(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	ctx := t.Context()
	pods := c.Clientset().CoreV1().Pods(ns)
	pod := corev1ac.Pod("tagged", ns).WithSpec(corev1ac.PodSpec().
		WithContainers(corev1ac.Container().WithName("app").WithImage("registry.example/app:1.0")))
	_, err := pods.Apply(ctx, pod, metav1.ApplyOptions{FieldManager: fieldManager})
	require.NoError(t, err)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		p, err := pods.Get(ctx, "tagged", metav1.GetOptions{})
		require.NoError(ct, err)
		require.Equal(ct, corev1.PodRunning, p.Status.Phase)
		require.Len(ct, p.Status.ContainerStatuses, 1)
		assert.True(ct, p.Status.ContainerStatuses[0].Ready)
		assert.Empty(ct, p.Status.ContainerStatuses[0].ImageID)
	}, 60*time.Second, 250*time.Millisecond)
}

func TestJobCompletes(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	ctx := t.Context()

	job := batchv1ac.Job("once", ns).WithSpec(batchv1ac.JobSpec().
		WithBackoffLimit(0).
		WithTemplate(corev1ac.PodTemplateSpec().WithSpec(corev1ac.PodSpec().
			WithRestartPolicy(corev1.RestartPolicyNever).
			WithContainers(corev1ac.Container().WithName("once").WithImage(image)))))
	jobs := c.Clientset().BatchV1().Jobs(ns)
	_, err := jobs.Apply(ctx, job, metav1.ApplyOptions{FieldManager: fieldManager})
	require.NoError(t, err)

	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		j, err := jobs.Get(ctx, "once", metav1.GetOptions{})
		require.NoError(ct, err)
		assert.EqualValues(ct, 1, j.Status.Succeeded)
		assert.True(ct, jobComplete(j), "conditions: %v", j.Status.Conditions)
	}, 60*time.Second, 250*time.Millisecond)
}

func hasApplyManager(fields []metav1.ManagedFieldsEntry, manager string) bool {
	for _, f := range fields {
		if f.Manager == manager && f.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}

func deploymentAvailable(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func jobComplete(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobComplete {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
