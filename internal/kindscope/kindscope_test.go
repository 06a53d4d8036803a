package kindscope_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/shipkit/shipkit/internal/kindscope"
	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/kube"
)

var cluster = testbed.Lazy[*kube.Cluster]{Start: kube.Start}

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.Stop()
	os.Exit(code)
}

// offByDefault are the kinds of alpha and beta APIs the test bed's kube-apiserver
// (v1.34) does not serve without --runtime-config.
var offByDefault = map[schema.GroupKind]bool{
	{Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicy"}:        true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicyBinding"}: true,
	{Group: "certificates.k8s.io", Kind: "ClusterTrustBundle"}:                      true,
	{Group: "certificates.k8s.io", Kind: "PodCertificateRequest"}:                   true,
	{Group: "coordination.k8s.io", Kind: "LeaseCandidate"}:                          true,
	{Group: "internal.apiserver.k8s.io", Kind: "StorageVersion"}:                    true,
	{Group: "resource.k8s.io", Kind: "DeviceTaintRule"}:                             true,
	{Group: "storagemigration.k8s.io", Kind: "StorageVersionMigration"}:             true,
}

// The hand list is what the API server itself reports: every kind it serves is in
// the list with the same resource and scope, and every listed kind it does not serve
// is one of an API off by default.
func TestBuiltinMatchesAPIServer(t *testing.T) {
	c := cluster.Get(t)
	_, lists, err := c.Clientset().Discovery().ServerGroupsAndResources()
	require.NoError(t, err)
	builtin := kindscope.Builtin()
	served := map[schema.GroupKind]kindscope.Kind{}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		require.NoError(t, err)
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") { // subresource
				continue
			}
			served[gv.WithKind(r.Kind).GroupKind()] = kindscope.Kind{Resource: r.Name, Cluster: !r.Namespaced}
		}
	}
	require.NotEmpty(t, served)
	for gk, k := range served {
		assert.Equal(t, k, builtin[gk], "%v as the API server serves it", gk)
	}
	for gk := range builtin {
		if _, ok := served[gk]; !ok {
			assert.True(t, offByDefault[gk], "%v is listed but not served and not known to be off by default", gk)
		}
	}
	for gk := range offByDefault {
		_, ok := served[gk]
		assert.False(t, ok, "%v is served now: drop it from offByDefault", gk)
	}
}

func crd(group, kind, plural, scope string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": plural + "." + group},
		"spec": map[string]any{"group": group, "scope": scope,
			"names": map[string]any{"kind": kind, "plural": plural}},
	}}
}

func TestLookup(t *testing.T) {
	issuer := schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "ClusterIssuer"}
	cert := schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"}

	_, err := mustNew(t, kindscope.Options{}).Lookup(issuer, "WithClusterScopedKinds")
	require.ErrorIs(t, err, kindscope.ErrUnknownKind)
	assert.ErrorContains(t, err, "cert-manager.io/ClusterIssuer")
	assert.ErrorContains(t, err, "WithClusterScopedKinds")

	s := mustNew(t, kindscope.Options{Cluster: []schema.GroupKind{issuer.GroupKind()}, Namespaced: []schema.GroupKind{cert.GroupKind()}})
	k, err := s.Lookup(issuer, "")
	require.NoError(t, err)
	assert.Equal(t, kindscope.Kind{Resource: "clusterissuers", Cluster: true}, k)
	k, err = s.Lookup(cert, "")
	require.NoError(t, err)
	assert.False(t, k.Cluster)

	s = mustNew(t, kindscope.Options{}, []*unstructured.Unstructured{crd("cert-manager.io", "ClusterIssuer", "clusterissuers", "Cluster")})
	k, err = s.Lookup(issuer, "")
	require.NoError(t, err)
	assert.True(t, k.Cluster)

	k, err = s.Lookup(schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "ServiceCIDR"}, "")
	require.NoError(t, err)
	assert.Equal(t, kindscope.Kind{Resource: "servicecidrs", Cluster: true}, k)
	k, err = s.Lookup(schema.GroupVersionKind{Version: "v1", Kind: "Endpoints"}, "")
	require.NoError(t, err)
	assert.Equal(t, kindscope.Kind{Resource: "endpoints", Cluster: false}, k)
	assert.False(t, errors.Is(err, kindscope.ErrUnknownKind))
}

func mustNew(t *testing.T, opts kindscope.Options, objs ...[]*unstructured.Unstructured) *kindscope.Scopes {
	t.Helper()
	s, err := kindscope.New(opts, objs...)
	require.NoError(t, err)
	return s
}
