package apply_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/internal/testbed/kube"
)

// revisionKey is the deployer's key in these tests; the namespace writer never has it.
var revisionKey = apply.Key(bytes.Repeat([]byte("k"), apply.MinRevisionKeySize))

// namespaceWriter returns a client for a user who may read and write Secrets in ns,
// and nothing else: the attacker of a forged revision.
func namespaceWriter(t *testing.T, c *kube.Cluster, ns string) kubernetes.Interface {
	t.Helper()
	ctx := t.Context()
	rbac := c.Clientset().RbacV1()
	_, err := rbac.Roles(ns).Apply(ctx, rbacv1ac.Role("secret-writer", ns).WithRules(
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("secrets").WithVerbs("get", "list", "create", "update", "patch")),
		metav1.ApplyOptions{FieldManager: "test"})
	require.NoError(t, err)
	_, err = rbac.RoleBindings(ns).Apply(ctx, rbacv1ac.RoleBinding("secret-writer", ns).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup("rbac.authorization.k8s.io").WithKind("Role").WithName("secret-writer")).
		WithSubjects(rbacv1ac.Subject().WithKind("User").WithName("mallory")), metav1.ApplyOptions{FieldManager: "test"})
	require.NoError(t, err)
	cfg := c.RESTConfig()
	cfg.Impersonate.UserName = "mallory"
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	// The API server's RBAC authorizer learns of the new binding from a watch: wait
	// until it lets mallory read Secrets (a fresh-clone run saw "forbidden" at once).
	require.Eventually(t, func() bool {
		_, err := client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "mallory's Role binding never took effect")
	_, err = client.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "mallory may not touch RBAC herself: %v", err)
	return client
}

// gzipJSON encodes objects the way a kept revision stores them.
func gzipJSON(t *testing.T, objs []map[string]any) []byte {
	t.Helper()
	raw, err := json.Marshal(objs)
	require.NoError(t, err)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err = zw.Write(raw)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// ungzipJSON decodes a kept revision.
func ungzipJSON(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	require.NoError(t, err)
	var out []map[string]any
	require.NoError(t, json.NewDecoder(zr).Decode(&out))
	return out
}

// payload is what a forger puts in the revision: a ClusterRoleBinding that makes the
// namespace's default ServiceAccount cluster-admin, and a ConfigMap in a namespace
// the ApplySet never touched.
func payload(ns, other string) []map[string]any {
	return []map[string]any{
		{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
			"metadata": map[string]any{"name": "pwned-" + ns},
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
			"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": "default", "namespace": ns}}},
		{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "planted", "namespace": other},
			"data": map[string]any{"by": "mallory"}},
	}
}

// forge overwrites the revision Secret of set as the namespace writer: data is the
// kept revision, and the annotations (with the seal copied from the genuine Secret,
// when it has one) are edited by edit.
func forge(t *testing.T, client kubernetes.Interface, set *apply.ApplySet, data []byte, edit func(annotations map[string]string)) {
	t.Helper()
	ctx := t.Context()
	name := set.Name + apply.RevisionSecretSuffix
	sec, err := client.CoreV1().Secrets(set.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: set.Namespace}}
	} else {
		require.NoError(t, err)
	}
	sec.Labels = map[string]string{apply.ApplySetIDLabel: set.ID()}
	if sec.Annotations == nil {
		sec.Annotations = map[string]string{}
	}
	edit(sec.Annotations)
	sec.Data = map[string][]byte{apply.RevisionDataKey: data}
	if sec.ResourceVersion == "" {
		_, err = client.CoreV1().Secrets(set.Namespace).Create(ctx, sec, metav1.CreateOptions{})
	} else {
		_, err = client.CoreV1().Secrets(set.Namespace).Update(ctx, sec, metav1.UpdateOptions{})
	}
	require.NoError(t, err)
}

// assertRefused checks that err is the typed refusal naming the revision Secret.
func assertRefused(t *testing.T, err error, set *apply.ApplySet) {
	t.Helper()
	var re *apply.RevisionError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, deploy.ObjectRef{Kind: "Secret", Namespace: set.Namespace, Name: set.Name + apply.RevisionSecretSuffix}, re.Secret)
	assert.ErrorIs(t, err, apply.ErrRevisionTampered)
	assert.Contains(t, err.Error(), "Secret/"+set.Namespace+"/"+set.Name+apply.RevisionSecretSuffix)
	t.Log(err)
}

// assertNothingForged checks that nothing of the payload reached the cluster.
func assertNothingForged(t *testing.T, client kubernetes.Interface, ns, other string) {
	t.Helper()
	_, err := client.RbacV1().ClusterRoleBindings().Get(t.Context(), "pwned-"+ns, metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the forged ClusterRoleBinding was not created: %v", err)
	_, err = client.CoreV1().ConfigMaps(other).Get(t.Context(), "planted", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the forged ConfigMap in another namespace was not created: %v", err)
}

// assertStillThere checks that the set's objects were not pruned.
func assertStillThere(t *testing.T, client kubernetes.Interface, ns string, configMaps ...string) {
	t.Helper()
	_, err := client.AppsV1().Deployments(ns).Get(t.Context(), "web", metav1.GetOptions{})
	assert.NoError(t, err, "Deployment web was not pruned")
	for _, name := range configMaps {
		_, err := client.CoreV1().ConfigMaps(ns).Get(t.Context(), name, metav1.GetOptions{})
		assert.NoError(t, err, "ConfigMap %s was not pruned", name)
	}
}

// rollbackOptions are the options of a deployer that keeps revisions.
func rollbackOptions(ns string, set *apply.ApplySet) apply.Options {
	return apply.Options{Namespace: ns, ApplySet: set, Prune: true, Wait: time.Minute, PollInterval: 200 * time.Millisecond,
		Rollback: true, RevisionKey: revisionKey}
}

// TestRollbackRefusesForgedRevision: a user who may only write Secrets in the
// ApplySet's namespace replaces the kept revision with a ClusterRoleBinding to
// cluster-admin and a ConfigMap in another namespace, with the right id label, with
// or without the genuine Secret's seal. Manager.Rollback refuses it with a
// *RevisionError naming the Secret: nothing is created and nothing is pruned.
func TestRollbackRefusesForgedRevision(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	for name, edit := range map[string]func(map[string]string){
		"seal copied from the genuine revision": func(map[string]string) {},
		"no seal":                               func(a map[string]string) { delete(a, apply.RevisionSealAnnotation) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ns, other := c.NewNamespace(t), c.NewNamespace(t)
			ctx := t.Context()
			set := &apply.ApplySet{Name: "web", Namespace: ns}
			m, err := apply.New(c.RESTConfig(), rollbackOptions(ns, set))
			require.NoError(t, err)
			_, err = m.Apply(ctx, revision(t, "1", false))
			require.NoError(t, err)

			forge(t, namespaceWriter(t, c, ns), set, gzipJSON(t, payload(ns, other)), func(a map[string]string) {
				a[apply.LastGoodRevisionAnnotation] = "1"
				edit(a)
			})
			_, err = m.Rollback(ctx)
			assertRefused(t, err, set)
			assertNothingForged(t, c.Clientset(), ns, other)
			assertStillThere(t, c.Clientset(), ns, "settings")
		})
	}
}

// TestRollbackRefusesEditedRevision: the namespace writer edits a genuine revision
// (its objects, or only its name), keeping its seal: refused, nothing applied.
func TestRollbackRefusesEditedRevision(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	ctx := t.Context()
	set := &apply.ApplySet{Name: "web", Namespace: ns}
	m, err := apply.New(c.RESTConfig(), rollbackOptions(ns, set))
	require.NoError(t, err)
	_, err = m.Apply(ctx, revision(t, "1", false))
	require.NoError(t, err)
	mallory := namespaceWriter(t, c, ns)
	genuine, err := mallory.CoreV1().Secrets(ns).Get(ctx, "web"+apply.RevisionSecretSuffix, metav1.GetOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, genuine.Annotations[apply.RevisionSealAnnotation], "the kept revision is sealed")

	// The objects: the Deployment runs the attacker's image.
	objs := ungzipJSON(t, genuine.Data[apply.RevisionDataKey])
	edited := false
	for _, o := range objs {
		if o["kind"] == "Deployment" {
			u := &unstructured.Unstructured{Object: o}
			require.NoError(t, unstructured.SetNestedSlice(u.Object, []any{map[string]any{"name": "web", "image": "evil.example/miner:latest"}}, "spec", "template", "spec", "containers"))
			edited = true
		}
	}
	require.True(t, edited)
	forge(t, mallory, set, gzipJSON(t, objs), func(map[string]string) {})
	_, err = m.Rollback(ctx)
	assertRefused(t, err, set)

	// Only the revision's name, the data as it was.
	forge(t, mallory, set, genuine.Data[apply.RevisionDataKey], func(a map[string]string) { a[apply.LastGoodRevisionAnnotation] = "0" })
	_, err = m.Rollback(ctx)
	assertRefused(t, err, set)

	d, err := c.Clientset().AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "registry.example/web@"+sha, d.Spec.Template.Spec.Containers[0].Image, "the edited revision was not applied")

	// The genuine revision put back verifies again.
	forge(t, mallory, set, genuine.Data[apply.RevisionDataKey], func(a map[string]string) { a[apply.LastGoodRevisionAnnotation] = "1" })
	_, err = m.Rollback(ctx)
	require.NoError(t, err)
}

// TestAutomaticRollbackRefusesForgedRevision: the forged revision is in place when a
// new revision's rollout fails: the automatic rollback refuses it, applies nothing
// and prunes nothing; the failed revision stays for a person to look at.
func TestAutomaticRollbackRefusesForgedRevision(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns, other := c.NewNamespace(t), c.NewNamespace(t)
	ctx := t.Context()
	set := &apply.ApplySet{Name: "web", Namespace: ns}
	m, err := apply.New(c.RESTConfig(), rollbackOptions(ns, set))
	require.NoError(t, err)
	_, err = m.Apply(ctx, revision(t, "1", false))
	require.NoError(t, err)
	forge(t, namespaceWriter(t, c, ns), set, gzipJSON(t, payload(ns, other)), func(map[string]string) {})

	_, err = m.Apply(ctx, revision(t, "2", true))
	var rolledBack *apply.RolledBackError
	require.ErrorAs(t, err, &rolledBack)
	var failed *apply.RolloutError
	require.ErrorAs(t, err, &failed, "the rollout's own error is reachable")
	assert.Nil(t, rolledBack.Changes, "the rollback applied nothing")
	assert.Empty(t, rolledBack.Revision, "the forged revision's name is not trusted")
	assertRefused(t, err, set)
	assertNothingForged(t, c.Clientset(), ns, other)
	assertStillThere(t, c.Clientset(), ns, "settings", "extra")
	d, err := c.Clientset().AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "2", d.Annotations[deploy.RevisionAnnotation], "the failed revision stays")
}

// denyImage is a caller's gate that denies every object running image.
type denyImage string

func (g denyImage) Check(_ context.Context, objs []*unstructured.Unstructured) (*deploy.Decision, error) {
	d := &deploy.Decision{}
	for _, o := range objs {
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		for _, c := range containers {
			if img, _ := c.(map[string]any)["image"].(string); img == string(g) {
				r := deploy.Reason{Object: deploy.RefOf(o), Image: img}
				r.Code, r.Message = deploy.ReasonPolicy, "critical findings since it was kept"
				d.Deny(r)
			}
		}
	}
	return d, nil
}

// TestRollbackRunsTheGate: a revision the caller's gate now denies (its image has
// become vulnerable since it was kept) is not rolled back to; the gate that allows
// it lets the rollback through.
func TestRollbackRunsTheGate(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	ctx := t.Context()
	set := &apply.ApplySet{Name: "web", Namespace: ns}
	m, err := apply.New(c.RESTConfig(), rollbackOptions(ns, set))
	require.NoError(t, err)
	_, err = m.Apply(ctx, revision(t, "1", false))
	require.NoError(t, err)
	noRollback := rollbackOptions(ns, set)
	noRollback.Rollback = false
	m2, err := apply.New(c.RESTConfig(), noRollback)
	require.NoError(t, err)
	_, err = m2.Apply(ctx, revision(t, "2", true))
	var failed *apply.RolloutError
	require.ErrorAs(t, err, &failed)

	gated := noRollback
	gated.Gate = denyImage("registry.example/web@" + sha)
	m3, err := apply.New(c.RESTConfig(), gated)
	require.NoError(t, err)
	cs, err := m3.Rollback(ctx)
	require.ErrorContains(t, err, "the gate refuses the revision 1 to roll back to")
	assert.Contains(t, err.Error(), "critical findings since it was kept")
	assert.Nil(t, cs)
	d, err := c.Clientset().AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "2", d.Annotations[deploy.RevisionAnnotation], "nothing was rolled back")

	gated.Gate = denyImage("registry.example/other@" + sha)
	m4, err := apply.New(c.RESTConfig(), gated)
	require.NoError(t, err)
	_, err = m4.Rollback(ctx)
	require.NoError(t, err)
	assertRevision(t, c.Clientset(), ns, "1")
}

// TestRevisionKeyChecks: a key is needed to keep and to roll back to revisions, it
// is at least MinRevisionKeySize bytes, a revision sealed with another key is refused
// with a message that says what to do, and the key never prints.
func TestRevisionKeyChecks(t *testing.T) {
	set := &apply.ApplySet{Name: "web", Namespace: "shop"}
	opts := apply.Options{ApplySet: set, Wait: time.Minute, Rollback: true}
	_, err := apply.NewWithClient(nil, nil, opts)
	require.ErrorContains(t, err, "Rollback needs RevisionKey")
	opts.RevisionKey = revisionKey[:apply.MinRevisionKeySize-1]
	_, err = apply.NewWithClient(nil, nil, opts)
	require.ErrorContains(t, err, "RevisionKey: key shorter than 32 bytes")

	opts.RevisionKey = revisionKey
	printed := fmt.Sprintf("%v %+v %#v %s %x %q", opts, opts, opts, opts.RevisionKey, opts.RevisionKey, opts.RevisionKey)
	assert.NotContains(t, printed, "kkkk")
	assert.NotContains(t, printed, "6b6b6b6b")
	assert.NotContains(t, printed, "107 107")
	assert.Contains(t, printed, "(redacted)")

	client, mapper := fakeClients()
	m, err := apply.NewWithClient(client, mapper, apply.Options{ApplySet: set})
	require.NoError(t, err)
	_, err = m.Rollback(t.Context())
	require.ErrorContains(t, err, "rollback needs Options.RevisionKey")
}

// TestRollbackAfterKeyRotation: the revision kept with the old key is refused with
// the new one, saying to apply once more; the next good apply keeps a revision the
// new key verifies.
func TestRollbackAfterKeyRotation(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	ctx := t.Context()
	set := &apply.ApplySet{Name: "web", Namespace: ns}
	m, err := apply.New(c.RESTConfig(), rollbackOptions(ns, set))
	require.NoError(t, err)
	_, err = m.Apply(ctx, revision(t, "1", false))
	require.NoError(t, err)

	rotated := rollbackOptions(ns, set)
	rotated.RevisionKey = bytes.Repeat([]byte("n"), apply.MinRevisionKeySize)
	m2, err := apply.New(c.RESTConfig(), rotated)
	require.NoError(t, err)
	_, err = m2.Rollback(ctx)
	assertRefused(t, err, set)
	assert.True(t, strings.Contains(err.Error(), "rotated") && strings.Contains(err.Error(), "apply once more"), err.Error())

	_, err = m2.Apply(ctx, revision(t, "3", false))
	require.NoError(t, err)
	_, err = m2.Rollback(ctx)
	require.NoError(t, err, "the new key's revision rolls back")
}
