package apply_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/kube"
)

var cluster = testbed.Lazy[*kube.Cluster]{Start: kube.Start}

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.Stop()
	os.Exit(code)
}

const sha = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

const app = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example/shop/web:dev
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: extra
data:
  greeting: hello
`

// overlay renders base+overlay from memory into namespace ns.
func overlay(t *testing.T, ns string, replicas int, withExtra bool) []*unstructured.Unstructured {
	t.Helper()
	fs := filesys.MakeFsInMemory()
	require.NoError(t, fs.WriteFile("/base/kustomization.yaml", []byte("resources: [app.yaml]\n")))
	require.NoError(t, fs.WriteFile("/base/app.yaml", []byte(app)))
	k := "namespace: " + ns + "\nresources: [../base]\n" +
		"replicas:\n- name: web\n  count: " + string(rune('0'+replicas)) + "\n"
	if !withExtra {
		k += "patches:\n- target: {kind: ConfigMap, name: extra}\n  patch: |\n    $patch: delete\n    apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: extra}\n"
	}
	require.NoError(t, fs.WriteFile("/prod/kustomization.yaml", []byte(k)))
	d, err := name.NewDigest("registry.example/shop/web@" + sha)
	require.NoError(t, err)
	objs, err := render.Kustomize(fs, "/prod",
		render.WithImages(d),
		render.WithApp(render.App{Name: "web", PartOf: "shop", ManagedBy: "shipkit"}),
		render.WithRevision("1"),
	).Render(t.Context())
	require.NoError(t, err)
	return objs
}

func actions(cs *deploy.ChangeSet) map[string]deploy.Action {
	out := map[string]deploy.Action{}
	for _, c := range cs.Changes {
		out[c.Object.Kind+"/"+c.Object.Name] = c.Action
	}
	return out
}

func change(t *testing.T, cs *deploy.ChangeSet, kind, name string) deploy.Change {
	t.Helper()
	for _, c := range cs.Changes {
		if c.Object.Kind == kind && c.Object.Name == name {
			return c
		}
	}
	t.Fatalf("no change for %s/%s in\n%s", kind, name, cs)
	return deploy.Change{}
}

// TestLifecycle walks the scenario: render an overlay, apply and wait until
// the Deployment is Available, re-apply (unchanged), change a field (plan shows the
// diff, apply reports configured), drift by another manager (plan shows it, apply
// without force conflicts), remove an object (plan and apply prune only it), and a
// final plan with no change.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	ctx := t.Context()
	set := &apply.ApplySet{Name: "shop", Namespace: ns}
	opts := apply.Options{ApplySet: set, Prune: true, Wait: 90 * time.Second, PollInterval: 250 * time.Millisecond}
	m, err := apply.New(c.RESTConfig(), opts)
	require.NoError(t, err)

	// A ConfigMap in the namespace that is not part of the set must survive prunes.
	other := c.Clientset().CoreV1().ConfigMaps(ns)
	_, err = other.Apply(ctx, cmApply("other", ns), metav1.ApplyOptions{FieldManager: "someone-else"})
	require.NoError(t, err)

	// First plan against an empty namespace: everything would be created.
	plan, err := m.Plan(ctx, overlay(t, ns, 2, true))
	require.NoError(t, err)
	assert.Equal(t, map[string]deploy.Action{"Deployment/web": deploy.Created, "Service/web": deploy.Created, "ConfigMap/extra": deploy.Created}, actions(plan))

	start := time.Now()
	cs, err := m.Apply(ctx, overlay(t, ns, 2, true))
	require.NoError(t, err, "%v", cs)
	t.Logf("apply+wait of %d objects: %s", len(cs.Changes), time.Since(start).Round(time.Millisecond))
	assert.Equal(t, map[string]deploy.Action{"Deployment/web": deploy.Created, "Service/web": deploy.Created, "ConfigMap/extra": deploy.Created}, actions(cs))
	dep, err := c.Clientset().AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.EqualValues(t, 2, dep.Status.AvailableReplicas, "Apply waited for the rollout")
	assert.Equal(t, "registry.example/shop/web@"+sha, dep.Spec.Template.Spec.Containers[0].Image)
	assert.Equal(t, set.ID(), dep.Labels[apply.ApplySetPartOfLabel])

	// Same objects again: nothing changes.
	start = time.Now()
	cs, err = m.Apply(ctx, overlay(t, ns, 2, true))
	require.NoError(t, err)
	t.Logf("no-change apply: %s", time.Since(start).Round(time.Millisecond))
	assert.False(t, cs.Changed(), "%v", cs)

	// Change a field: the plan shows the diff, the apply reports configured.
	start = time.Now()
	plan, err = m.Plan(ctx, overlay(t, ns, 3, true))
	require.NoError(t, err)
	t.Logf("plan: %s\n%s", time.Since(start).Round(time.Millisecond), plan)
	assert.Equal(t, map[string]deploy.Action{"Deployment/web": deploy.Configured, "Service/web": deploy.Unchanged, "ConfigMap/extra": deploy.Unchanged}, actions(plan))
	assert.Equal(t, []deploy.FieldDiff{{Path: "spec.replicas", Before: int64(2), After: int64(3)}}, change(t, plan, "Deployment", "web").Diff)
	cs, err = m.Apply(ctx, overlay(t, ns, 3, true))
	require.NoError(t, err)
	assert.Equal(t, map[string]deploy.Action{"Deployment/web": deploy.Configured, "Service/web": deploy.Unchanged, "ConfigMap/extra": deploy.Unchanged}, actions(cs))

	// Drift: someone scales the Deployment with an update.
	dep, err = c.Clientset().AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	five := int32(5)
	dep.Spec.Replicas = &five
	_, err = c.Clientset().AppsV1().Deployments(ns).Update(ctx, dep, metav1.UpdateOptions{FieldManager: "kubectl-scale"})
	require.NoError(t, err)
	plan, err = m.Plan(ctx, overlay(t, ns, 3, true))
	require.NoError(t, err)
	drifted := change(t, plan, "Deployment", "web")
	assert.Equal(t, deploy.Configured, drifted.Action)
	assert.Equal(t, []deploy.Conflict{{Field: ".spec.replicas", Manager: "kubectl-scale"}}, drifted.Drift)
	assert.Equal(t, []deploy.FieldDiff{{Path: "spec.replicas", Before: int64(5), After: int64(3)}}, drifted.Diff)
	_, err = m.Apply(ctx, overlay(t, ns, 3, true))
	var conflict *apply.ConflictError
	require.ErrorAs(t, err, &conflict)
	assert.Equal(t, []deploy.Conflict{{Field: ".spec.replicas", Manager: "kubectl-scale"}}, conflict.Conflicts)
	assert.Contains(t, err.Error(), `.spec.replicas (owned by "kubectl-scale")`)
	t.Log(err)
	forced := opts
	forced.Force = true
	fm, err := apply.New(c.RESTConfig(), forced)
	require.NoError(t, err)
	cs, err = fm.Apply(ctx, overlay(t, ns, 3, true))
	require.NoError(t, err)
	assert.Equal(t, deploy.Configured, change(t, cs, "Deployment", "web").Action)

	// Remove the ConfigMap from the set: plan and apply prune it and nothing else.
	plan, err = m.Plan(ctx, overlay(t, ns, 3, false))
	require.NoError(t, err)
	assert.Equal(t, map[string]deploy.Action{"Deployment/web": deploy.Unchanged, "Service/web": deploy.Unchanged, "ConfigMap/extra": deploy.Pruned}, actions(plan))
	cs, err = m.Apply(ctx, overlay(t, ns, 3, false))
	require.NoError(t, err)
	assert.Equal(t, map[string]deploy.Action{"Deployment/web": deploy.Unchanged, "Service/web": deploy.Unchanged, "ConfigMap/extra": deploy.Pruned}, actions(cs))
	_, err = other.Get(ctx, "extra", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "extra pruned: %v", err)
	_, err = other.Get(ctx, "other", metav1.GetOptions{})
	assert.NoError(t, err, "an object outside the set is never pruned")
	_, err = other.Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
	assert.NoError(t, err)

	// Third run: the plan shows no change.
	plan, err = m.Plan(ctx, overlay(t, ns, 3, false))
	require.NoError(t, err)
	assert.False(t, plan.Changed(), "%v", plan)

	// The parent records the set as kubectl's ApplySet does.
	parent, err := other.Get(ctx, "shop", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, set.ID(), parent.Labels[apply.ApplySetIDLabel])
	assert.Equal(t, "Deployment.apps,Service", parent.Annotations[apply.ApplySetGroupKindsAnnotation])
}

const crd = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.NS.shipkit.test
spec:
  group: NS.shipkit.test
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
---
apiVersion: NS.shipkit.test/v1
kind: Widget
metadata: {name: w, namespace: NS}
spec: {size: 3}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: NS}
---
apiVersion: v1
kind: Namespace
metadata: {name: NS}
`

// TestStaging applies a CRD, a custom resource of it, a namespace and an object in
// that namespace in the wrong order in one set: the stages put them right.
func TestStaging(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := "stage-" + strings.ToLower(strings.ReplaceAll(time.Now().Format("150405.000000"), ".", ""))
	objs, err := render.Parse("crd.yaml", []byte(strings.ReplaceAll(crd, "NS", ns)))
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx := t.Context()
		_ = dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).Delete(ctx, "widgets."+ns+".shipkit.test", metav1.DeleteOptions{})
		_ = c.Clientset().CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	})

	m, err := apply.New(c.RESTConfig(), apply.Options{ApplySet: &apply.ApplySet{Name: "set", Namespace: ns}, Wait: time.Minute})
	require.NoError(t, err)
	plan, err := m.Plan(t.Context(), objs)
	require.NoError(t, err)
	assert.Equal(t, 4, plan.Count(deploy.Created), "%v", plan)

	cs, err := m.Apply(t.Context(), objs)
	require.NoError(t, err)
	var order []string
	for _, ch := range cs.Changes {
		order = append(order, ch.Object.Kind)
		assert.Equal(t, deploy.Created, ch.Action)
	}
	assert.Equal(t, []string{"CustomResourceDefinition", "Namespace", "Widget", "ConfigMap"}, order)

	cs, err = m.Apply(t.Context(), objs)
	require.NoError(t, err)
	assert.False(t, cs.Changed(), "%v", cs)
}

// TestFailedRolloutFailsFast waits on a Deployment that cannot be scheduled and
// whose progress deadline is one second: the wait fails with a RolloutError long
// before its timeout.
func TestFailedRolloutFailsFast(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	objs, err := render.Parse("stuck.yaml", []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck}
spec:
  progressDeadlineSeconds: 1
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      nodeSelector: {no-such-node: "true"}
      containers: [{name: c, image: registry.example/x@`+sha+`}]
`))
	require.NoError(t, err)
	m, err := apply.New(c.RESTConfig(), apply.Options{Namespace: ns, Wait: 2 * time.Minute})
	require.NoError(t, err)
	start := time.Now()
	_, err = m.Apply(t.Context(), objs)
	var failed *apply.RolloutError
	require.ErrorAs(t, err, &failed)
	assert.Less(t, time.Since(start), time.Minute)
	assert.Contains(t, err.Error(), "Deployment/"+ns+"/stuck")
	t.Logf("failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
}

// TestWaitTimeout names the objects still pending when the wait times out.
func TestWaitTimeout(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	objs, err := render.Parse("pending.yaml", []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: pending}
spec:
  selector: {matchLabels: {app: pending}}
  template:
    metadata: {labels: {app: pending}}
    spec:
      nodeSelector: {no-such-node: "true"}
      containers: [{name: c, image: registry.example/x@`+sha+`}]
`))
	require.NoError(t, err)
	m, err := apply.New(c.RESTConfig(), apply.Options{Namespace: ns, Wait: 2 * time.Second})
	require.NoError(t, err)
	_, err = m.Apply(t.Context(), objs)
	var timeout *apply.TimeoutError
	require.ErrorAs(t, err, &timeout)
	assert.Contains(t, timeout.Pending, deploy.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: ns, Name: "pending"})
	t.Log(err)
}

// TestBadObjects fails before anything is applied.
func TestBadObjects(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	m, err := apply.New(c.RESTConfig(), apply.Options{})
	require.NoError(t, err)
	for _, tc := range []struct {
		name, yaml string
		want       string
		is         error
	}{
		{"unknown kind", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: " + ns + "}\n---\napiVersion: nope.example/v1\nkind: Gadget\nmetadata: {name: g, namespace: " + ns + "}\n", "Gadget.nope.example/" + ns + "/g", apply.ErrUnknownKind},
		{"no namespace", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n", "ConfigMap/a", nil},
		{"twice", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: " + ns + "}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: " + ns + "}\n", "appears twice", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := render.Parse("bad.yaml", []byte(tc.yaml))
			require.NoError(t, err)
			cs, err := m.Apply(t.Context(), objs)
			require.Error(t, err)
			assert.Nil(t, cs)
			assert.Contains(t, err.Error(), tc.want)
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
			_, err = c.Clientset().CoreV1().ConfigMaps(ns).Get(t.Context(), "a", metav1.GetOptions{})
			assert.True(t, apierrors.IsNotFound(err), "nothing applied")
			t.Log(err)
		})
	}
}

func cmApply(name, ns string) *corev1ac.ConfigMapApplyConfiguration {
	return corev1ac.ConfigMap(name, ns).WithData(map[string]string{"k": "v"})
}

// TestPreflight checks RBAC before touching anything: an administrator passes, a
// user who may only read ConfigMaps gets every missing permission in one error.
func TestPreflight(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	ctx := t.Context()
	objs, err := render.Parse("cm.yaml", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"))
	require.NoError(t, err)

	admin, err := apply.New(c.RESTConfig(), apply.Options{Namespace: ns, Preflight: true})
	require.NoError(t, err)
	require.NoError(t, admin.Preflight(ctx, objs))

	rbac := c.Clientset().RbacV1()
	_, err = rbac.Roles(ns).Apply(ctx, rbacv1ac.Role("read", ns).WithRules(
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("configmaps").WithVerbs("get")), metav1.ApplyOptions{FieldManager: "test"})
	require.NoError(t, err)
	_, err = rbac.RoleBindings(ns).Apply(ctx, rbacv1ac.RoleBinding("read", ns).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup("rbac.authorization.k8s.io").WithKind("Role").WithName("read")).
		WithSubjects(rbacv1ac.Subject().WithKind("User").WithName("reader")), metav1.ApplyOptions{FieldManager: "test"})
	require.NoError(t, err)
	cfg := c.RESTConfig()
	cfg.Impersonate.UserName = "reader"
	reader, err := apply.New(cfg, apply.Options{Namespace: ns, Preflight: true})
	require.NoError(t, err)
	cs, err := reader.Apply(ctx, objs)
	var forbidden *apply.ForbiddenError
	require.ErrorAs(t, err, &forbidden)
	assert.Nil(t, cs)
	assert.Equal(t, []apply.Permission{
		{Verb: "create", Resource: "configmaps", Namespace: ns},
		{Verb: "patch", Resource: "configmaps", Namespace: ns},
	}, forbidden.Missing)
	t.Log(err)
}

// TestHundredObjects applies and plans 100 objects (90 ConfigMaps and 10
// Deployments) and logs how long each step takes; the goal for the plan is
// 0.5 s.
func TestHundredObjects(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	var b strings.Builder
	for i := range 90 {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d}\ndata: {i: %q}\n", i, fmt.Sprint(i))
	}
	for i := range 10 {
		fmt.Fprintf(&b, `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d-%d}
spec:
  selector: {matchLabels: {app: d-%d}}
  template:
    metadata: {labels: {app: d-%d}}
    spec:
      containers: [{name: c, image: registry.example/x@%s}]
`, i, i, i, sha)
	}
	objs, err := render.Parse("many.yaml", []byte(b.String()))
	require.NoError(t, err)
	require.Len(t, objs, 100)
	m, err := apply.New(c.RESTConfig(), apply.Options{Namespace: ns, Wait: 2 * time.Minute, PollInterval: 250 * time.Millisecond,
		ApplySet: &apply.ApplySet{Name: "many", Namespace: ns}, Prune: true})
	require.NoError(t, err)

	start := time.Now()
	cs, err := m.Apply(t.Context(), objs)
	require.NoError(t, err)
	assert.Equal(t, 100, cs.Count(deploy.Created))
	t.Logf("apply+wait of 100 objects: %s", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	plan, err := m.Plan(t.Context(), objs)
	require.NoError(t, err)
	assert.False(t, plan.Changed())
	t.Logf("plan of 100 objects: %s", time.Since(start).Round(time.Millisecond))
}
