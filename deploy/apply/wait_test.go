package apply_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/render"
)

// job renders a Job that runs once; spec and podSpec are lines added to its spec
// and its pod's spec.
func job(t *testing.T, name string, spec, podSpec string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := render.Parse("job.yaml", []byte(fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata: {name: %s}
spec:
  backoffLimit: 0
%s  template:
    spec:
      restartPolicy: Never
%s      containers: [{name: c, image: registry.example/x@%s}]
`, name, spec, podSpec, sha)))
	require.NoError(t, err)
	return objs
}

// TestWaitJobs: a Job that runs (kwok's pod-complete stage makes its pod Succeeded)
// is waited on until it is Complete; a Job whose pod cannot be scheduled is still
// waited on (started is not done) until the timeout, which names it; a Job that
// fails (its active deadline passes) fails the wait at once.
func TestWaitJobs(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)

	t.Run("completes", func(t *testing.T) {
		t.Parallel()
		ns := c.NewNamespace(t)
		m, err := apply.New(c.RESTConfig(), apply.Options{Namespace: ns, Wait: 2 * time.Minute, PollInterval: 100 * time.Millisecond})
		require.NoError(t, err)
		start := time.Now()
		_, err = m.Apply(t.Context(), job(t, "once", "", ""))
		require.NoError(t, err)
		t.Logf("apply and wait: %s", time.Since(start).Round(time.Millisecond))
		j, err := c.Clientset().BatchV1().Jobs(ns).Get(t.Context(), "once", metav1.GetOptions{})
		require.NoError(t, err)
		assert.EqualValues(t, 1, j.Status.Succeeded)
		assert.True(t, hasCondition(j, batchv1.JobComplete), "Apply returned only once the Job was Complete: %+v", j.Status)
	})

	t.Run("cannot run", func(t *testing.T) {
		t.Parallel()
		ns := c.NewNamespace(t)
		m, err := apply.New(c.RESTConfig(), apply.Options{Namespace: ns, Wait: 3 * time.Second, PollInterval: 100 * time.Millisecond})
		require.NoError(t, err)
		_, err = m.Apply(t.Context(), job(t, "stuck", "", "      nodeSelector: {no-such-node: \"true\"}\n"))
		var timeout *apply.TimeoutError
		require.ErrorAs(t, err, &timeout)
		ref := deploy.ObjectRef{Group: "batch", Kind: "Job", Namespace: ns, Name: "stuck"}
		assert.Contains(t, timeout.Pending, ref)
		assert.Contains(t, err.Error(), ref.String())
		j, err := c.Clientset().BatchV1().Jobs(ns).Get(t.Context(), "stuck", metav1.GetOptions{})
		require.NoError(t, err)
		assert.NotNil(t, j.Status.StartTime, "the Job had started, and was still waited on")
		t.Log(timeout)
	})

	t.Run("fails", func(t *testing.T) {
		t.Parallel()
		ns := c.NewNamespace(t)
		m, err := apply.New(c.RESTConfig(), apply.Options{Namespace: ns, Wait: 2 * time.Minute, PollInterval: 100 * time.Millisecond})
		require.NoError(t, err)
		start := time.Now()
		_, err = m.Apply(t.Context(), job(t, "doomed", "  activeDeadlineSeconds: 1\n", "      nodeSelector: {no-such-node: \"true\"}\n"))
		var failed *apply.RolloutError
		require.ErrorAs(t, err, &failed)
		assert.Equal(t, deploy.ObjectRef{Group: "batch", Kind: "Job", Namespace: ns, Name: "doomed"}, failed.Object)
		assert.Less(t, time.Since(start), time.Minute, "failed fast, not at the timeout")
		t.Logf("failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	})
}

func hasCondition(j *batchv1.Job, typ batchv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == typ {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

const gadgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.GROUP
spec:
  group: GROUP
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget, listKind: GadgetList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
`

// TestWaitCustomResources installs a CRD with a status subresource, creates a
// custom resource per case, sets its status as a controller would, and waits: a
// Ready condition True passes; Ready False, Available False, or Ready True for an
// older generation time out naming the object and why; Stalled True fails at once;
// one that becomes Ready while waited on passes.
func TestWaitCustomResources(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ctx := t.Context()
	group := "w" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "") + ".shipkit.test"
	crd, err := render.Parse("crd.yaml", []byte(strings.ReplaceAll(gadgetCRD, "GROUP", group)))
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	t.Cleanup(func() { _ = crds.Delete(context.Background(), "gadgets."+group, metav1.DeleteOptions{}) })
	installer, err := apply.New(c.RESTConfig(), apply.Options{})
	require.NoError(t, err)
	_, err = installer.Apply(ctx, crd) // waits until Established
	require.NoError(t, err)
	gadgets := schema.GroupVersionResource{Group: group, Version: "v1", Resource: "gadgets"}

	cond := func(typ, status, reason, msg string) map[string]any {
		return map[string]any{"type": typ, "status": status, "reason": reason, "message": msg, "lastTransitionTime": "2026-01-01T00:00:00Z"}
	}
	// create applies a Gadget in a new namespace, sets its status (nil: none) and
	// returns a Manager for that namespace, the Gadget and its reference.
	create := func(t *testing.T, status map[string]any) (*apply.Manager, []*unstructured.Unstructured, deploy.ObjectRef) {
		t.Helper()
		ns := c.NewNamespace(t)
		objs, err := render.Parse("gadget.yaml", []byte("apiVersion: "+group+"/v1\nkind: Gadget\nmetadata: {name: g}\nspec: {size: 1}\n"))
		require.NoError(t, err)
		m, err := apply.New(c.RESTConfig(), apply.Options{Namespace: ns, PollInterval: 100 * time.Millisecond})
		require.NoError(t, err)
		_, err = m.Apply(t.Context(), objs)
		require.NoError(t, err)
		if status != nil {
			setStatus(t, dyn.Resource(gadgets).Namespace(ns), "g", status)
		}
		return m, objs, deploy.ObjectRef{Group: group, Kind: "Gadget", Namespace: ns, Name: "g"}
	}

	for _, tc := range []struct {
		name   string
		status map[string]any
		want   string // "" healthy, "timeout" or "failed"
		reason string // in the error
	}{
		{"ready", map[string]any{"observedGeneration": int64(1), "conditions": []any{cond("Ready", "True", "Done", "all good")}}, "", ""},
		{"no status", nil, "", ""},
		{"not ready", map[string]any{"conditions": []any{cond("Ready", "False", "Provisioning", "waiting for a disk")}}, "timeout", "waiting for a disk"},
		{"ready for an older generation", map[string]any{"observedGeneration": int64(0), "conditions": []any{cond("Ready", "True", "Done", "all good")}}, "timeout", "generation"},
		{"unavailable", map[string]any{"conditions": []any{cond("Available", "False", "Down", "no replicas")}}, "timeout", "condition Available is False"},
		{"stalled", map[string]any{"conditions": []any{cond("Stalled", "True", "BadConfig", "size must be even")}}, "failed", "size must be even"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, objs, ref := create(t, tc.status)
			start := time.Now()
			err := m.Wait(t.Context(), objs, 3*time.Second)
			switch tc.want {
			case "":
				require.NoError(t, err)
			case "timeout":
				var timeout *apply.TimeoutError
				require.ErrorAs(t, err, &timeout)
				assert.Contains(t, timeout.Pending[ref], tc.reason)
				assert.Contains(t, err.Error(), ref.String())
				assert.ErrorIs(t, err, context.DeadlineExceeded)
			case "failed":
				var failed *apply.RolloutError
				require.ErrorAs(t, err, &failed)
				assert.Equal(t, ref, failed.Object)
				assert.Contains(t, err.Error(), tc.reason)
				assert.Less(t, time.Since(start), 2*time.Second, "failed at once, not at the timeout")
			}
			if err != nil {
				t.Log(err)
			}
		})
	}

	t.Run("becomes ready", func(t *testing.T) {
		t.Parallel()
		m, objs, ref := create(t, map[string]any{"conditions": []any{cond("Ready", "False", "Provisioning", "waiting")}})
		done := make(chan error, 1)
		go func() { done <- m.Wait(t.Context(), objs, time.Minute) }()
		select {
		case err := <-done:
			t.Fatalf("Wait returned while the Gadget was not Ready: %v", err)
		case <-time.After(time.Second): // ten polls
		}
		setStatus(t, dyn.Resource(gadgets).Namespace(ref.Namespace), "g",
			map[string]any{"conditions": []any{cond("Ready", "True", "Done", "all good")}})
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("Wait did not see the Gadget become Ready")
		}
	})
}

// setStatus writes a custom resource's status through its status subresource.
func setStatus(t *testing.T, r dynamic.ResourceInterface, name string, status map[string]any) {
	t.Helper()
	u, err := r.Get(t.Context(), name, metav1.GetOptions{})
	require.NoError(t, err)
	u.Object["status"] = status
	_, err = r.UpdateStatus(t.Context(), u, metav1.UpdateOptions{})
	require.NoError(t, err)
}
