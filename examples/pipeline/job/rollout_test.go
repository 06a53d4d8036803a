package job

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestPlanCanary: the canary release is looked for where apply puts the objects, so
// a Deployment and a Service that name no namespace need one from the job, and a
// Service in another namespace than the Deployment is refused, before the cluster
// is asked anything (planCanary, which the gate runs, has none). Objects that cannot
// have a canary are refused too; every error says it is the -prometheus rollout's
// and names the overlay or the chart the objects came from.
func TestPlanCanary(t *testing.T) {
	obj := func(kind, ns string) *unstructured.Unstructured {
		o := &unstructured.Unstructured{}
		o.SetAPIVersion("v1")
		if kind == "Deployment" {
			o.SetAPIVersion("apps/v1")
		}
		o.SetKind(kind)
		o.SetName("hello")
		o.SetNamespace(ns)
		return o
	}
	noTrack := obj("Deployment", "team-a")
	require.NoError(t, unstructured.SetNestedStringMap(noTrack.Object, map[string]string{"app": "hello"}, "spec", "selector", "matchLabels"))
	for name, tc := range map[string]struct {
		namespace, chart string
		objs             []*unstructured.Unstructured
		want             string
	}{
		"none decided":         {"", "", []*unstructured.Unstructured{obj("Deployment", ""), obj("Service", "")}, "the Deployment hello names no namespace"},
		"service elsewhere":    {"", "", []*unstructured.Unstructured{obj("Deployment", "team-a"), obj("Service", "team-b")}, "needs the Service team-b/hello in the Deployment's namespace team-a"},
		"service not in -ns":   {"team-a", "", []*unstructured.Unstructured{obj("Deployment", ""), obj("Service", "team-b")}, "needs the Service team-b/hello in the Deployment's namespace team-a"},
		"deployment not in ns": {"team-a", "", []*unstructured.Unstructured{obj("Deployment", "team-b"), obj("Service", "")}, "needs the Service team-a/hello in the Deployment's namespace team-b"},
		"two deployments":      {"team-a", "", []*unstructured.Unstructured{obj("Deployment", ""), obj("Deployment", ""), obj("Service", "")}, "needs exactly one Deployment, the embedded overlay has 2"},
		"chart without one":    {"team-a", "testdata-chart", []*unstructured.Unstructured{obj("Service", "")}, "needs exactly one Deployment, the chart testdata-chart has 0"},
		"no service":           {"team-a", "", []*unstructured.Unstructured{obj("Deployment", "")}, "needs a Service beside the Deployment hello, the embedded overlay has none"},
		"no track label":       {"", "", []*unstructured.Unstructured{noTrack, obj("Service", "team-a")}, "canary of Deployment team-a/hello: invalid rollout: the selector has no track label"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Namespace = tc.namespace
			j, err := New(cfg)
			require.NoError(t, err)
			defer j.Close()
			j.cfg.Chart = tc.chart // New would look for it on disk; the plan only names it
			j.Objects = tc.objs
			_, err = j.planCanary()
			require.Error(t, err)
			assert.Regexp(t, `^-prometheus canary rollout: `, err.Error())
			assert.ErrorContains(t, err, tc.want)
			if tc.chart != "" {
				assert.NotContains(t, err.Error(), "overlay")
			}
		})
	}
}
