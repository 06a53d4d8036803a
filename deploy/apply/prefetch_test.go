package apply_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/deploy/render"
)

// TestWithoutListPermission: a caller who may get, create and patch ConfigMaps but
// not list them still applies and plans a set large enough to be read by a list:
// the objects are read one by one instead.
func TestWithoutListPermission(t *testing.T) {
	t.Parallel()
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	ctx := t.Context()
	rbac := c.Clientset().RbacV1()
	_, err := rbac.Roles(ns).Apply(ctx, rbacv1ac.Role("no-list", ns).WithRules(
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("configmaps").WithVerbs("get", "create", "patch")), metav1.ApplyOptions{FieldManager: "test"})
	require.NoError(t, err)
	_, err = rbac.RoleBindings(ns).Apply(ctx, rbacv1ac.RoleBinding("no-list", ns).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup("rbac.authorization.k8s.io").WithKind("Role").WithName("no-list")).
		WithSubjects(rbacv1ac.Subject().WithKind("User").WithName("no-lister")), metav1.ApplyOptions{FieldManager: "test"})
	require.NoError(t, err)
	cfg := c.RESTConfig()
	cfg.Impersonate.UserName = "no-lister"
	m, err := apply.New(cfg, apply.Options{Namespace: ns})
	require.NoError(t, err)

	var objs []*unstructured.Unstructured
	for i := range 12 {
		o, err := render.Parse("cm.yaml", []byte(fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d}\ndata: {i: %q}\n", i, fmt.Sprint(i))))
		require.NoError(t, err)
		objs = append(objs, o...)
	}
	cs, err := m.Apply(ctx, objs)
	require.NoError(t, err)
	assert.Equal(t, 12, cs.Count(deploy.Created))
	require.NoError(t, unstructured.SetNestedField(objs[3].Object, "changed", "data", "i"))
	plan, err := m.Plan(ctx, objs)
	require.NoError(t, err)
	assert.Equal(t, 11, plan.Count(deploy.Unchanged))
	assert.Equal(t, []deploy.FieldDiff{{Path: "data.i", Before: "3", After: "changed"}}, change(t, plan, "ConfigMap", "cm-3").Diff)
}
