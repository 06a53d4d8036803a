package rollout_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// This file holds the fakes of the fast tests: a fake clientset with ready
// Deployments, and a router that records its calls. The integration tests use the
// real control plane instead.

const ns = "shop"

var (
	stableLabels = map[string]string{"app": "web", "track": "stable"}
	canaryLabels = map[string]string{"app": "web", "track": "canary"}
)

// deployment returns a Deployment labeled (and selecting its pods by) labels, running
// image with n replicas; ready makes its status say it rolled out.
func deployment(name string, labels map[string]string, image string, n int32, ready bool) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}},
			},
		},
	}
	if ready {
		d.Status = appsv1.DeploymentStatus{Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
	}
	return d
}

func service(name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.ServiceSpec{Selector: selector}}
}

// fakeCluster returns a fake clientset with a ready stable (v1) and canary (v2)
// Deployment and a Service "web".
func fakeCluster() *fake.Clientset {
	return withResourceVersions(fake.NewClientset(
		deployment("web", stableLabels, "web:v1", 2, true),
		deployment("web-canary", canaryLabels, "web:v2", 1, true),
		service("web", map[string]string{"app": "web"}),
	))
}

// withResourceVersions makes the fake clientset do what the API server does for
// ConfigMaps and Leases and the fake tracker does not: give each write a new
// resourceVersion and refuse an update of a stale one with a conflict.
func withResourceVersions(c *fake.Clientset) *fake.Clientset {
	var mu sync.Mutex
	rv := 0
	react := func(action k8stesting.Action) (bool, runtime.Object, error) {
		if r := action.GetResource().Resource; r != "configmaps" && r != "leases" {
			return false, nil, nil
		}
		mu.Lock()
		defer mu.Unlock()
		obj := action.(interface{ GetObject() runtime.Object }).GetObject()
		m, err := meta.Accessor(obj)
		if err != nil {
			return true, nil, err
		}
		if action.GetVerb() == "update" {
			cur, err := c.Tracker().Get(action.GetResource(), action.GetNamespace(), m.GetName())
			if err != nil {
				return true, nil, err
			}
			cm, _ := meta.Accessor(cur)
			if cm.GetResourceVersion() != m.GetResourceVersion() {
				return true, nil, apierrors.NewConflict(action.GetResource().GroupResource(), m.GetName(),
					fmt.Errorf("resourceVersion %q is not the current %q", m.GetResourceVersion(), cm.GetResourceVersion()))
			}
		}
		rv++
		m.SetResourceVersion(strconv.Itoa(rv))
		return false, nil, nil // the tracker stores obj, now with its version
	}
	c.PrependReactor("create", "*", react)
	c.PrependReactor("update", "*", react)
	return c
}

// recordingRouter records every call, as "reset", "weight 10" or "header x=y".
type recordingRouter struct {
	mu       sync.Mutex
	calls    []string
	checkErr error
	failOn   string // a call that returns an error
}

func (r *recordingRouter) add(call string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call)
	if call == r.failOn {
		return fmt.Errorf("router: %s failed", call)
	}
	return nil
}

func (r *recordingRouter) SetWeight(_ context.Context, w int32) error {
	return r.add("weight " + strconv.Itoa(int(w)))
}

func (r *recordingRouter) SetHeaderMatch(_ context.Context, name, value string) error {
	return r.add("header " + name + "=" + value)
}

func (r *recordingRouter) Reset(context.Context) error { return r.add("reset") }

func (r *recordingRouter) Check(context.Context) error { return r.checkErr }

func (r *recordingRouter) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// maxWeight is the highest weight the router was set to.
func (r *recordingRouter) maxWeight() int {
	m := 0
	for _, c := range r.Calls() {
		if w, ok := strings.CutPrefix(c, "weight "); ok {
			n, _ := strconv.Atoi(w)
			m = max(m, n)
		}
	}
	return m
}

// image returns the image of a Deployment's first container.
func image(t *testing.T, c kubernetes.Interface, namespace, name string) string {
	t.Helper()
	d, err := c.AppsV1().Deployments(namespace).Get(t.Context(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return d.Spec.Template.Spec.Containers[0].Image
}

// replicasOf returns a Deployment's spec.replicas.
func replicasOf(t *testing.T, c kubernetes.Interface, namespace, name string) int32 {
	t.Helper()
	d, err := c.AppsV1().Deployments(namespace).Get(t.Context(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return *d.Spec.Replicas
}
