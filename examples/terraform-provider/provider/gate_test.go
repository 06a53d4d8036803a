package provider

import (
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/sign/cosign"
)

var gateTypes = map[string]attr.Type{
	"public_keys":          types.ListType{ElemType: types.StringType},
	"threshold":            types.Int64Type,
	"require_attestations": types.ListType{ElemType: types.StringType},
	"fail_on":              types.StringType,
	"max_report_age":       types.StringType,
	"pod_security":         types.StringType,
	"disable_rules":        types.MapType{ElemType: types.StringType},
	"registries":           types.ListType{ElemType: types.StringType},
	"insecure_registries":  types.ListType{ElemType: types.StringType},
}

// gateObject builds a gate attribute value; unset attributes are null.
func gateObject(t *testing.T, set map[string]attr.Value) types.Object {
	t.Helper()
	vals := map[string]attr.Value{
		"public_keys":          types.ListNull(types.StringType),
		"threshold":            types.Int64Null(),
		"require_attestations": types.ListNull(types.StringType),
		"fail_on":              types.StringNull(),
		"max_report_age":       types.StringNull(),
		"pod_security":         types.StringNull(),
		"disable_rules":        types.MapNull(types.StringType),
		"registries":           types.ListNull(types.StringType),
		"insecure_registries":  types.ListNull(types.StringType),
	}
	for k, v := range set {
		vals[k] = v
	}
	o, diags := types.ObjectValue(gateTypes, vals)
	require.False(t, diags.HasError(), "%v", diags)
	return o
}

func strs(vs ...string) types.List {
	elems := make([]attr.Value, len(vs))
	for i, v := range vs {
		elems[i] = types.StringValue(v)
	}
	return types.ListValueMust(types.StringType, elems)
}

func TestGateSettings(t *testing.T) {
	kp, err := cosign.GenerateKeyPair([]byte("pw"))
	require.NoError(t, err)
	pub := string(kp.PublicPEM)
	tests := []struct {
		name string
		set  map[string]attr.Value
		want string // empty: valid
	}{
		{"pinning only", nil, ""},
		{"signatures", map[string]attr.Value{"public_keys": strs(pub), "threshold": types.Int64Value(1)}, ""},
		{"everything", map[string]attr.Value{
			"public_keys": strs(pub), "require_attestations": strs("https://slsa.dev/provenance/v1"),
			"fail_on": types.StringValue("high"), "pod_security": types.StringValue("baseline"),
			"disable_rules": types.MapValueMust(types.StringType, map[string]attr.Value{"read-only-root-fs": types.StringValue("writes to /tmp")}),
		}, ""},
		{"bad key", map[string]attr.Value{"public_keys": strs("not a key")}, "Invalid gate keys"},
		{"bad registry", map[string]attr.Value{"public_keys": strs(pub), "registries": strs("https://registry.example/")}, "Invalid gate"},
		{"registries", map[string]attr.Value{"public_keys": strs(pub), "registries": strs("ghcr.io", "*.example.com"),
			"insecure_registries": strs("127.0.0.1:5000")}, ""},
		{"threshold without keys", map[string]attr.Value{"threshold": types.Int64Value(2)}, "threshold needs public_keys"},
		{"threshold above the keys", map[string]attr.Value{"public_keys": strs(pub), "threshold": types.Int64Value(2)}, "threshold 2"},
		{"attestations without keys", map[string]attr.Value{"require_attestations": strs("https://slsa.dev/provenance/v1")}, "need public_keys"},
		{"bad severity", map[string]attr.Value{"public_keys": strs(pub), "fail_on": types.StringValue("dire")}, "Invalid severity"},
		{"unknown is no threshold", map[string]attr.Value{"public_keys": strs(pub), "fail_on": types.StringValue("unknown")}, "is not a severity threshold"},
		{"report age", map[string]attr.Value{"public_keys": strs(pub), "fail_on": types.StringValue("high"), "max_report_age": types.StringValue("72h")}, ""},
		{"any report age", map[string]attr.Value{"public_keys": strs(pub), "fail_on": types.StringValue("high"), "max_report_age": types.StringValue("none")}, ""},
		{"bad report age", map[string]attr.Value{"public_keys": strs(pub), "fail_on": types.StringValue("high"), "max_report_age": types.StringValue("0s")}, "Invalid report age"},
		{"report age without fail_on", map[string]attr.Value{"public_keys": strs(pub), "max_report_age": types.StringValue("72h")}, "MaxReportAge bounds the reports FailOn reads"},
		{"bad level", map[string]attr.Value{"pod_security": types.StringValue("strict")}, "Invalid Pod Security level"},
		{"rules without level", map[string]attr.Value{"disable_rules": types.MapValueMust(types.StringType, map[string]attr.Value{"image-digest": types.StringValue("x")})}, "disable_rules needs pod_security"},
		{"rule without reason", map[string]attr.Value{
			"pod_security":  types.StringValue("restricted"),
			"disable_rules": types.MapValueMust(types.StringType, map[string]attr.Value{"image-digest": types.StringValue(" ")}),
		}, "reason is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diags := validateGate(t.Context(), gateObject(t, tt.set))
			if tt.want == "" {
				assert.False(t, diags.HasError(), "%v", diags)
				return
			}
			require.True(t, diags.HasError())
			var all []string
			for _, d := range diags.Errors() {
				all = append(all, d.Summary()+": "+d.Detail())
			}
			assert.Contains(t, strings.Join(all, "\n"), tt.want)
		})
	}
	assert.False(t, validateGate(t.Context(), types.ObjectNull(gateTypes)).HasError(), "no gate is valid")
	assert.False(t, gateKnown(gateObject(t, map[string]attr.Value{"public_keys": types.ListUnknown(types.StringType)})))
	assert.True(t, gateKnown(types.ObjectNull(gateTypes)))
}

func TestGateDenies(t *testing.T) {
	r := &ReleaseResource{c: newClients(clientsConfig{})}
	deployment := func(image string) *unstructured.Unstructured {
		return parseYAML(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: `+image+"\n")
	}
	pinned := "registry.example/web@sha256:" + strings.Repeat("a", 64)

	diags := r.checkGate(t.Context(), gateObject(t, nil), []*unstructured.Unstructured{deployment(pinned)})
	assert.False(t, diags.HasError(), "a pinned image passes a gate without keys: %v", diags)

	diags = r.checkGate(t.Context(), gateObject(t, nil), []*unstructured.Unstructured{deployment("registry.example/web:1.0")})
	require.True(t, diags.HasError())
	assert.Contains(t, diags.Errors()[0].Detail(), "not pinned by digest")

	diags = r.checkGate(t.Context(), gateObject(t, map[string]attr.Value{"pod_security": types.StringValue("restricted")}),
		[]*unstructured.Unstructured{deployment(pinned)})
	require.True(t, diags.HasError(), "a container with no securityContext is not restricted")
	assert.Contains(t, diags.Errors()[0].Summary(), "denied by the deploy gate")
	assert.Contains(t, diags.Errors()[0].Detail(), "Deployment/shop/web")
}
