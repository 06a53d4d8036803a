package rollout_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/deploy/rollout"
)

// TestCanaryDeployment: the canary is the release's copy under "<name>-canary", with
// track=canary on its labels, selector and pod template, no replicas, and nothing the
// API server wrote; the release is not changed.
func TestCanaryDeployment(t *testing.T) {
	release := deployment("web", map[string]string{"app": "web", "track": "stable", "tier": "front"}, "registry.example/web:v2", 4, true)
	release.Spec.Template.Labels = map[string]string{"app": "web", "track": "stable", "tier": "front", "version": "v2"}
	release.UID, release.ResourceVersion, release.Generation = types.UID("1234"), "42", 7
	release.CreationTimestamp = metav1.Now()
	release.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	release.Annotations = map[string]string{"deployment.kubernetes.io/revision": "3", "team": "shop"}
	release.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "9"}}
	before := release.DeepCopy()

	c, err := rollout.CanaryDeployment(release)
	require.NoError(t, err)
	assert.Equal(t, before, release, "the release is not changed")

	assert.Equal(t, "web-canary", c.Name)
	assert.Equal(t, metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}, c.TypeMeta)
	assert.Equal(t, ns, c.Namespace)
	assert.Equal(t, map[string]string{"app": "web", "track": "canary", "tier": "front"}, c.Labels)
	assert.Equal(t, map[string]string{"app": "web", "track": "canary", "tier": "front"}, c.Spec.Selector.MatchLabels)
	assert.Equal(t, map[string]string{"app": "web", "track": "canary", "tier": "front", "version": "v2"}, c.Spec.Template.Labels)
	assert.Nil(t, c.Spec.Replicas, "the rollout scales the canary")
	assert.Equal(t, release.Spec.Template.Spec, c.Spec.Template.Spec, "the new release's pod spec")
	assert.Equal(t, map[string]string{"team": "shop"}, c.Annotations, "the controller's revision is not copied")
	assert.Equal(t, release.OwnerReferences, c.OwnerReferences)
	assert.Empty(t, c.UID)
	assert.Empty(t, c.ResourceVersion)
	assert.Zero(t, c.Generation)
	assert.True(t, c.CreationTimestamp.IsZero())
	assert.Empty(t, c.ManagedFields)
	assert.Equal(t, appsv1.DeploymentStatus{}, c.Status)

	// The stable selector does not select the canary's pods, nor the other way round.
	assert.False(t, selects(t, release, c.Spec.Template.Labels))
	assert.False(t, selects(t, c, release.Spec.Template.Labels))
	assert.True(t, selects(t, c, c.Spec.Template.Labels))
}

func selects(t *testing.T, d *appsv1.Deployment, pod map[string]string) bool {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	require.NoError(t, err)
	return sel.Matches(labels.Set(pod))
}

// TestCanaryDeploymentRefuses: a release that cannot have a canary is refused with
// ErrInvalid, naming why.
func TestCanaryDeploymentRefuses(t *testing.T) {
	long := make([]byte, 250)
	for i := range long {
		long[i] = 'a'
	}
	for _, tc := range []struct {
		name   string
		change func(d *appsv1.Deployment)
		want   string
	}{
		{"no track in the selector", func(d *appsv1.Deployment) {
			d.Spec.Selector.MatchLabels = map[string]string{"app": "web"}
		}, "the selector has no track label"},
		{"no selector", func(d *appsv1.Deployment) { d.Spec.Selector = nil }, "the selector has no track label"},
		{"a canary already", func(d *appsv1.Deployment) {
			d.Spec.Selector.MatchLabels = map[string]string{"app": "web", "track": "canary"}
		}, "a canary already"},
		{"track in matchExpressions", func(d *appsv1.Deployment) {
			d.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "track", Operator: metav1.LabelSelectorOpIn, Values: []string{"stable"}}}
		}, "matchExpressions use track"},
		{"no name", func(d *appsv1.Deployment) { d.Name = "" }, "no name"},
		{"name too long", func(d *appsv1.Deployment) { d.Name = string(long) }, "canary name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := deployment("web", map[string]string{"app": "web", "track": "stable"}, "web:v2", 2, false)
			tc.change(d)
			_, err := rollout.CanaryDeployment(d)
			require.ErrorIs(t, err, rollout.ErrInvalid)
			assert.ErrorContains(t, err, tc.want)
		})
	}
	_, err := rollout.CanaryDeployment(nil)
	require.ErrorIs(t, err, rollout.ErrInvalid)
}

const releaseYAML = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  namespace: demo
  labels: {app: hello, track: stable}
spec:
  replicas: 2
  selector:
    matchLabels: {app: hello, track: stable}
  template:
    metadata:
      labels: {app: hello, track: stable}
    spec:
      containers:
      - name: hello
        image: registry.example/hello@sha256:0000000000000000000000000000000000000000000000000000000000000000
        ports: [{name: http, containerPort: 8080}]
`

// TestCanaryObject: the unstructured canary has what CanaryDeployment gives, every
// other field as the author wrote it (one the Deployment type does not know
// included) and none the author did not write (no creationTimestamp, no status);
// another kind is refused.
func TestCanaryObject(t *testing.T) {
	release := &unstructured.Unstructured{}
	require.NoError(t, yaml.Unmarshal([]byte(releaseYAML), &release.Object))
	before := release.DeepCopy()

	c, err := rollout.CanaryObject(release)
	require.NoError(t, err)
	assert.Equal(t, before, release, "the release is not changed")
	assert.Equal(t, "apps/v1", c.GetAPIVersion())
	assert.Equal(t, "Deployment", c.GetKind())
	assert.Equal(t, "hello-canary", c.GetName())
	assert.Equal(t, "demo", c.GetNamespace())
	for _, path := range [][]string{{"metadata", "labels"}, {"spec", "selector", "matchLabels"}, {"spec", "template", "metadata", "labels"}} {
		got, _, err := unstructured.NestedStringMap(c.Object, path...)
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"app": "hello", "track": "canary"}, got, path)
	}
	for _, path := range [][]string{{"spec", "replicas"}, {"status"}, {"metadata", "creationTimestamp"}, {"spec", "template", "metadata", "creationTimestamp"}} {
		_, found, err := unstructured.NestedFieldNoCopy(c.Object, path...)
		require.NoError(t, err)
		assert.False(t, found, path)
	}
	containers, _, err := unstructured.NestedSlice(c.Object, "spec", "template", "spec", "containers")
	require.NoError(t, err)
	want, _, _ := unstructured.NestedSlice(release.Object, "spec", "template", "spec", "containers")
	assert.Equal(t, want, containers)

	// It is the typed canary.
	var typed appsv1.Deployment
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(c.Object, &typed))
	assert.Equal(t, "hello-canary", typed.Name)

	// Only the canary's fields differ from the release's.
	rest := c.DeepCopy()
	for _, path := range [][]string{{"metadata"}, {"spec", "selector"}, {"spec", "template", "metadata"}} {
		unstructured.RemoveNestedField(rest.Object, path...)
	}
	restRelease := release.DeepCopy()
	for _, path := range [][]string{{"metadata"}, {"spec", "selector"}, {"spec", "template", "metadata"}, {"spec", "replicas"}} {
		unstructured.RemoveNestedField(restRelease.Object, path...)
	}
	assert.Equal(t, restRelease, rest)

	unknown := release.DeepCopy()
	require.NoError(t, unstructured.SetNestedField(unknown.Object, "x", "spec", "template", "spec", "futureField"))
	c, err = rollout.CanaryObject(unknown)
	require.NoError(t, err)
	got, _, _ := unstructured.NestedString(c.Object, "spec", "template", "spec", "futureField")
	assert.Equal(t, "x", got, "a field this module does not know is kept")

	svc := &unstructured.Unstructured{}
	svc.SetAPIVersion("v1")
	svc.SetKind("Service")
	svc.SetName("hello")
	_, err = rollout.CanaryObject(svc)
	require.ErrorIs(t, err, rollout.ErrInvalid)
	assert.ErrorContains(t, err, "not an apps/v1 Deployment")
}
