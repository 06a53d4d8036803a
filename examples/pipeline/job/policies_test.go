package job

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/internal/testbed/kube"
)

// widgetCRD defines a namespaced custom kind, installed only in the cluster.
const widgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.pipeline.shipkit.test
spec:
  group: pipeline.shipkit.test
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
`

// maxSizeVAP denies widgets larger than 3.
const maxSizeVAP = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: max-size
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: ["pipeline.shipkit.test"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["widgets"]
  validations:
  - expression: "object.spec.size <= 3"
    messageExpression: "'widget ' + object.metadata.name + ' has size ' + string(object.spec.size) + ', at most 3'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: max-size-team
spec:
  policyName: max-size
  validationActions: [Deny]
`

// TestAdmissionPoliciesClusterKinds: with a kubeconfig, the admission policies map
// kinds by the cluster's discovery, as render's placement and apply do, so a custom
// resource whose CRD is installed only in the cluster is placed in Namespace and
// judged there by a policy on its resource (it used to be an error: scope of kind
// unknown).
func TestAdmissionPoliciesClusterKinds(t *testing.T) {
	c, stop, err := kube.Start()
	require.NoError(t, err)
	defer stop()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	crds, err := render.Parse("crd.yaml", []byte(widgetCRD))
	require.NoError(t, err)
	_, err = dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).
		Create(ctx, crds[0], metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := c.Clientset().Discovery().ServerResourcesForGroupVersion("pipeline.shipkit.test/v1")
		return err == nil
	}, time.Minute, 100*time.Millisecond, "the CRD is served")

	cfg := testConfig()
	cfg.Overlay = t.TempDir()
	cfg.Namespace = "team-a"
	cfg.Kubeconfig, cfg.Context = c.Kubeconfig, c.Context
	cfg.AdmissionPolicies = []string{filepath.Join(t.TempDir(), "max-size.yaml")}
	require.NoError(t, os.WriteFile(cfg.AdmissionPolicies[0], []byte(maxSizeVAP), 0o644))
	j, err := New(cfg)
	require.NoError(t, err)
	defer j.Close()
	w := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "pipeline.shipkit.test/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "big"}, "spec": map[string]any{"size": int64(5)},
	}}
	j.Objects = []*unstructured.Unstructured{w}
	objs, _, err := j.judged()
	require.NoError(t, err)
	assert.Equal(t, "team-a", w.GetNamespace(), "placed by the cluster's discovery")

	require.Len(t, j.policies, 1)
	d, err := j.policies[0].Check(ctx, objs)
	require.NoError(t, err)
	require.Len(t, d.Reasons, 1)
	assert.Equal(t, "Widget.pipeline.shipkit.test/team-a/big: [vap:max-size/max-size-team] widgets.pipeline.shipkit.test \"big\" is forbidden: "+
		"ValidatingAdmissionPolicy 'max-size' with binding 'max-size-team' denied request: widget big has size 5, at most 3", d.Reasons[0].String())
}

// TestJudgedPlacesAddedObjects: objects a program adds to Job.Objects after render
// are placed too before the gate judges them, where apply would put them.
func TestJudgedPlacesAddedObjects(t *testing.T) {
	cfg := testConfig()
	cfg.Overlay = t.TempDir()
	cfg.Namespace = "team-a"
	j, err := New(cfg)
	require.NoError(t, err)
	defer j.Close()
	cm := &unstructured.Unstructured{}
	cm.SetAPIVersion("v1")
	cm.SetKind("ConfigMap")
	cm.SetName("added")
	role := &unstructured.Unstructured{}
	role.SetAPIVersion("rbac.authorization.k8s.io/v1")
	role.SetKind("ClusterRole")
	role.SetName("reader")
	role.SetNamespace("team-b")
	j.Objects = []*unstructured.Unstructured{cm, role}
	objs, _, err := j.judged()
	require.NoError(t, err)
	require.Len(t, objs, 2)
	assert.Equal(t, "team-a", cm.GetNamespace())
	assert.Empty(t, role.GetNamespace(), "cluster-scoped")
}
