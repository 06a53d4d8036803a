package job

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestCanaryObjectsNamespace: the canary release is looked for where apply puts the
// objects, so a Deployment and a Service that name no namespace need one from the
// job, and a Service in another namespace than the Deployment is refused, before
// the cluster is asked anything (planCanary, which the gate runs, has none).
func TestCanaryObjectsNamespace(t *testing.T) {
	obj := func(kind, ns string) *unstructured.Unstructured {
		o := &unstructured.Unstructured{}
		o.SetAPIVersion("v1")
		o.SetKind(kind)
		o.SetName("hello")
		o.SetNamespace(ns)
		return o
	}
	for name, tc := range map[string]struct {
		namespace, deployment, service, want string
	}{
		"none decided":         {"", "", "", "the Deployment hello names no namespace"},
		"service elsewhere":    {"", "team-a", "team-b", "the Service team-b/hello in the Deployment's namespace team-a"},
		"service not in -ns":   {"team-a", "", "team-b", "the Service team-b/hello in the Deployment's namespace team-a"},
		"deployment not in ns": {"team-a", "team-b", "", "the Service team-a/hello in the Deployment's namespace team-b"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Namespace = tc.namespace
			j, err := New(cfg)
			require.NoError(t, err)
			defer j.Close()
			j.Objects = []*unstructured.Unstructured{obj("Deployment", tc.deployment), obj("Service", tc.service)}
			_, err = j.planCanary()
			assert.ErrorContains(t, err, tc.want)
		})
	}
}
