package apply

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestRevisionScope: a revision may hold only kinds the ApplySet's parent records,
// in the parent's namespace or one it records; anything else is named.
func TestRevisionScope(t *testing.T) {
	inv := &inventory{
		set:        &ApplySet{Name: "web", Namespace: "shop"},
		kinds:      map[schema.GroupKind]bool{{Group: "apps", Kind: "Deployment"}: true, {Kind: "ConfigMap"}: true, {Kind: "Namespace"}: true},
		namespaces: map[string]bool{"shop-jobs": true},
	}
	obj := func(apiVersion, kind, ns, name string) *unstructured.Unstructured {
		o := &unstructured.Unstructured{}
		o.SetAPIVersion(apiVersion)
		o.SetKind(kind)
		o.SetNamespace(ns)
		o.SetName(name)
		return o
	}
	require.NoError(t, inv.inScope([]*unstructured.Unstructured{
		obj("apps/v1", "Deployment", "shop", "web"), obj("v1", "ConfigMap", "shop-jobs", "settings"), obj("v1", "Namespace", "", "shop-jobs"),
	}))
	err := inv.inScope([]*unstructured.Unstructured{
		obj("apps/v1", "Deployment", "shop", "web"),
		obj("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", "admin"),
		obj("v1", "ConfigMap", "kube-system", "planted"),
	})
	require.ErrorIs(t, err, ErrRevisionOutOfScope)
	assert.Equal(t, "revision holds objects outside the ApplySet's scope: "+
		"ClusterRoleBinding.rbac.authorization.k8s.io/admin (kind ClusterRoleBinding.rbac.authorization.k8s.io not recorded), "+
		"ConfigMap/kube-system/planted (namespace not recorded)", err.Error())
}
