package job

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/sign"
)

// namespaceRego denies what a team may not deploy: anything in the prod namespace,
// and a canary without an owner.
const namespaceRego = `package main

deny contains msg if {
	input.kind == "Deployment"
	input.metadata.namespace == "prod"
	msg := sprintf("Deployment %s is in prod: this pipeline may not deploy there", [input.metadata.name])
}

deny contains msg if {
	input.metadata.labels.track == "canary"
	not input.metadata.annotations.owner
	msg := sprintf("canary %s has no owner annotation", [input.metadata.name])
}
`

// namespacelessOverlay writes the example service's manifests under a new
// directory, with an overlay that names repo and no namespace: the base's
// Deployment and Service name none, for Config.Namespace to decide.
func namespacelessOverlay(t *testing.T, repo string) string {
	t.Helper()
	overlay, err := WriteManifests(t.TempDir())
	require.NoError(t, err)
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../../base\n" +
		"images:\n- name: hello\n  newName: " + repo + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o644))
	return overlay
}

// runToGate runs the stages up to and including the gate, and returns the gate's
// error.
func runToGate(t *testing.T, j *Job) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, s := range j.Stages() {
		_, err := s.Run(ctx)
		if s.Name == "gate" {
			return err
		}
		require.NoError(t, err, s.Name)
	}
	t.Fatal("no gate stage")
	return nil
}

// TestGateJudgesOverlayNamespace: a user's overlay leaves the Deployment without a
// namespace and Namespace is prod, where apply would deploy it. The gate judges it
// in prod, so the user's Rego rule against prod denies it, naming the rule and the
// object in prod. (The gate used to judge it in no namespace and let it through.)
func TestGateJudgesOverlayNamespace(t *testing.T) {
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	defer stop()
	repo := host + "/team/hello"
	cfg := testConfig()
	cfg.Platforms = []string{"linux/amd64"}
	cfg.Registry = repo
	cfg.Overlay = namespacelessOverlay(t, repo)
	cfg.Namespace = "prod"
	cfg.Rego = []string{filepath.Join(t.TempDir(), "prod.rego")}
	require.NoError(t, os.WriteFile(cfg.Rego[0], []byte(namespaceRego), 0o644))
	j, err := New(cfg)
	require.NoError(t, err)
	defer j.Close()

	err = runToGate(t, j)
	require.ErrorIs(t, err, sign.ErrDenied)
	var de *deploy.DecisionError
	require.True(t, errors.As(err, &de), "%v", err)
	assert.Contains(t, err.Error(), "Deployment/prod/hello: [rego:main.deny] Deployment hello is in prod")
	for _, o := range j.Objects {
		assert.Equal(t, "prod", o.GetNamespace(), "%s is where apply puts it", deploy.RefOf(o))
	}
}

// TestPlaceNamespaces: render's placement follows apply's decision for each kind:
// namespaced kinds without a namespace get the job's, cluster-scoped ones lose a
// namespace they name, a custom resource's scope comes from its CRD among the
// objects, and without a cluster a kind nothing knows is left as rendered and named.
func TestPlaceNamespaces(t *testing.T) {
	obj := func(apiVersion, kind, name, ns string) *unstructured.Unstructured {
		o := &unstructured.Unstructured{}
		o.SetAPIVersion(apiVersion)
		o.SetKind(kind)
		o.SetName(name)
		o.SetNamespace(ns)
		return o
	}
	crd := obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com", "")
	require.NoError(t, unstructured.SetNestedField(crd.Object, map[string]any{
		"group": "example.com", "scope": "Namespaced", "names": map[string]any{"kind": "Widget", "plural": "widgets"},
	}, "spec"))
	objs := []*unstructured.Unstructured{
		obj("apps/v1", "Deployment", "hello", ""),
		obj("v1", "ConfigMap", "kept", "team-b"),
		obj("rbac.authorization.k8s.io/v1", "ClusterRole", "reader", "team-b"),
		crd,
		obj("example.com/v1", "Widget", "w", ""),
		obj("other.example/v1", "Gadget", "g", ""),
	}
	cfg := testConfig()
	cfg.Overlay = t.TempDir()
	cfg.Namespace = "team-a"
	j, err := New(cfg)
	require.NoError(t, err)
	defer j.Close()
	note, err := j.placeNamespaces(objs)
	require.NoError(t, err)
	var refs []string
	for _, o := range objs {
		refs = append(refs, deploy.RefOf(o).String())
	}
	assert.Equal(t, []string{"Deployment/team-a/hello", "ConfigMap/team-b/kept", "ClusterRole.rbac.authorization.k8s.io/reader",
		"CustomResourceDefinition.apiextensions.k8s.io/widgets.example.com", "Widget.example.com/team-a/w", "Gadget.other.example/g"}, refs)
	assert.Equal(t, "; 2 placed in namespace team-a; 1 cluster-scoped without their namespace; "+
		"left as rendered, scope unknown without a cluster: Gadget.other.example/g", note)
}

// minReplicasVAP is a ValidatingAdmissionPolicy a cluster would enforce, with a Deny
// binding: Deployments run at least 2 replicas. The example's stable Deployment runs
// 2; its canary names none, and the API server admits it with the default, 1.
const minReplicasVAP = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: min-replicas
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["deployments"]
  validations:
  - expression: "object.spec.replicas >= 2"
    messageExpression: "'deployment ' + object.metadata.name + ' runs ' + string(object.spec.replicas) + ' replicas, production needs 2'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: min-replicas-prod
spec:
  policyName: min-replicas
  validationActions: [Deny]
`

// TestGateJudgesCanary: with a canary rollout configured, the gate judges the canary
// Deployment a release after the first applies in place of the stable one (placed
// in Namespace, like the objects), so a Rego rule against canaries denies the job
// before anything is applied, and its denials say it is the -prometheus canary. It
// judges the canary as the API server admits it, replicas defaulted to 1, so a
// min-replicas admission policy denies it for its replicas (not for a missing
// field). The cluster (the test bed's) also maps kinds for render's placement. The
// canary the gate judged is the one the deploy stage applies beside a running
// stable Deployment.
func TestGateJudgesCanary(t *testing.T) {
	c, stopCluster, err := kube.Start()
	require.NoError(t, err)
	defer stopCluster()
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	defer stop()
	repo := host + "/team/hello"
	cfg := testConfig()
	cfg.Platforms = []string{"linux/amd64"}
	cfg.Registry = repo
	cfg.Overlay = namespacelessOverlay(t, repo)
	cfg.Namespace = "team-canary"
	cfg.Kubeconfig, cfg.Context = c.Kubeconfig, c.Context
	cfg.Prometheus = "http://127.0.0.1:1" // never reached: the gate denies first
	cfg.Rego = []string{filepath.Join(t.TempDir(), "canary.rego")}
	require.NoError(t, os.WriteFile(cfg.Rego[0], []byte(namespaceRego), 0o644))
	cfg.AdmissionPolicies = []string{filepath.Join(t.TempDir(), "min-replicas.yaml")}
	require.NoError(t, os.WriteFile(cfg.AdmissionPolicies[0], []byte(minReplicasVAP), 0o644))
	j, err := New(cfg)
	require.NoError(t, err)
	defer j.Close()

	err = runToGate(t, j)
	require.ErrorIs(t, err, sign.ErrDenied)
	assert.Contains(t, err.Error(), "Deployment/team-canary/hello-canary: the -prometheus canary of Deployment hello: "+
		"[rego:main.deny] canary hello-canary has no owner annotation")
	assert.Contains(t, err.Error(), "Deployment/team-canary/hello-canary: the -prometheus canary of Deployment hello: "+
		"[vap:min-replicas/min-replicas-prod] deployments.apps \"hello-canary\" is forbidden: ValidatingAdmissionPolicy 'min-replicas' "+
		"with binding 'min-replicas-prod' denied request: deployment hello-canary runs 1 replicas, production needs 2")
	assert.NotContains(t, err.Error(), "no such key")
	assert.NotContains(t, err.Error(), "Deployment/team-canary/hello:", "the stable Deployment passes")
	assert.Len(t, j.Decision.Reasons, 2, "%v", err)
	_, found, _ := unstructured.NestedFieldNoCopy(j.canary.canary.Object, "spec", "replicas")
	assert.False(t, found, "the canary applied names no replicas: the rollout scales it")

	// With stable running, the deploy stage applies that very canary in its place.
	ctx := context.Background()
	client := c.Clientset()
	_, err = client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cfg.Namespace}}, metav1.CreateOptions{})
	require.NoError(t, err)
	var stable appsv1.Deployment
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(j.canary.stable.Object, &stable))
	_, err = client.AppsV1().Deployments(cfg.Namespace).Create(ctx, &stable, metav1.CreateOptions{})
	require.NoError(t, err)
	objs, rel, err := j.canaryObjects(ctx, client)
	require.NoError(t, err)
	require.NotNil(t, rel)
	assert.Contains(t, objs, j.canary.canary, "the judged canary is applied")
	assert.NotContains(t, objs, j.canary.stable, "stable is left as it runs")
}
