package provider

import (
	"encoding/json"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCamel(t *testing.T) {
	for in, want := range map[string]string{
		"id": "id", "source_dir": "sourceDir", "secret_objects": "secretObjects", "applyset_id": "applysetId",
	} {
		assert.Equal(t, want, camel(in), in)
	}
	assert.Equal(t, "shipkit:index:Image", token("shipkit_image"))
	assert.Equal(t, "shipkit:index:GitopsRelease", token("shipkit_gitops_release"))
}

// testAttrs is a schema like shipkit_image's: required, optional+computed,
// computed-only, sensitive, a list, a map and a single nested attribute.
var testAttrs = attrs{
	{Name: "id", Type: tftypes.String, Computed: true},
	{Name: "source_dir", Type: tftypes.String, Required: true},
	{Name: "package", Type: tftypes.String, Optional: true, Computed: true},
	{Name: "platforms", Type: tftypes.List{ElementType: tftypes.String}, Optional: true},
	{Name: "replicas", Type: tftypes.Number, Optional: true},
	{Name: "force", Type: tftypes.Bool, Optional: true},
	{Name: "sign", Optional: true, NestedType: &tfprotov6.SchemaObject{
		Nesting: tfprotov6.SchemaObjectNestingModeSingle,
		Attributes: []*tfprotov6.SchemaAttribute{
			{Name: "key_file", Type: tftypes.String, Optional: true},
			{Name: "password_env", Type: tftypes.String, Optional: true, Computed: true},
		},
	}},
	{Name: "digest", Type: tftypes.String, Computed: true},
	{Name: "secret_objects", Type: tftypes.Map{ElementType: tftypes.String}, Computed: true, Sensitive: true},
}

func TestRoundTrip(t *testing.T) {
	pm := resource.PropertyMap{
		"sourceDir": resource.MakeSecret(resource.NewProperty("/src")), // a secret input is unwrapped
		"platforms": resource.NewProperty([]resource.PropertyValue{resource.NewProperty("linux/amd64")}),
		"replicas":  resource.NewProperty(2.0),
		"force":     resource.NewProperty("true"), // as stack configuration sends it
		"sign":      resource.NewProperty(resource.PropertyMap{"keyFile": resource.NewProperty("k")}),
		"digest":    resource.NewProperty("sha256:1"),
		"secretObjects": resource.NewProperty(resource.PropertyMap{
			"Secret/web": resource.NewProperty("data"),
		}),
		"notInSchema": resource.NewProperty("ignored"),
	}
	v, err := testAttrs.toTerraform(pm, false)
	require.NoError(t, err)
	var vals map[string]tftypes.Value
	require.NoError(t, v.As(&vals))
	var s string
	require.NoError(t, vals["source_dir"].As(&s))
	assert.Equal(t, "/src", s)
	assert.True(t, vals["package"].IsNull())
	var b bool
	require.NoError(t, vals["force"].As(&b))
	assert.True(t, b)

	// As a configuration, the computed-only attributes are null.
	cfg, err := testAttrs.toTerraform(pm, true)
	require.NoError(t, err)
	require.NoError(t, cfg.As(&vals))
	assert.True(t, vals["digest"].IsNull())
	assert.True(t, vals["secret_objects"].IsNull())
	assert.False(t, vals["source_dir"].IsNull())

	back, err := testAttrs.toPulumi(v)
	require.NoError(t, err)
	assert.Equal(t, "/src", back["sourceDir"].StringValue())
	assert.Equal(t, 2.0, back["replicas"].NumberValue())
	assert.Equal(t, "k", back["sign"].ObjectValue()["keyFile"].StringValue())
	assert.True(t, back["secretObjects"].IsSecret(), "a sensitive attribute is a secret")
	assert.NotContains(t, back, resource.PropertyKey("id"), "the id is the resource's ID, not a property")
	assert.NotContains(t, back, resource.PropertyKey("notInSchema"))

	_, err = testAttrs.toTerraform(resource.PropertyMap{"replicas": resource.NewProperty("two")}, false)
	require.ErrorContains(t, err, "replicas: want a number")
}

func TestUnknowns(t *testing.T) {
	pm := resource.PropertyMap{
		"sourceDir": resource.MakeComputed(resource.NewProperty("")),
		"sign":      resource.MakeComputed(resource.NewProperty("")),
	}
	v, err := testAttrs.toTerraform(pm, true)
	require.NoError(t, err)
	var vals map[string]tftypes.Value
	require.NoError(t, v.As(&vals))
	assert.False(t, vals["source_dir"].IsKnown())
	assert.False(t, vals["sign"].IsKnown())

	back, err := testAttrs.toPulumi(v)
	require.NoError(t, err)
	assert.True(t, back["sourceDir"].IsComputed())
	assert.True(t, back["sign"].IsComputed())
}

func TestJSONEncodedObject(t *testing.T) {
	pm := resource.PropertyMap{"sign": resource.NewProperty(`{"keyFile": "k"}`)}
	v, err := testAttrs.toTerraform(pm, true)
	require.NoError(t, err)
	back, err := testAttrs.toPulumi(v)
	require.NoError(t, err)
	assert.Equal(t, "k", back["sign"].ObjectValue()["keyFile"].StringValue())
}

func TestProposedNew(t *testing.T) {
	prior, err := testAttrs.toTerraform(resource.PropertyMap{
		"id": resource.NewProperty("x"), "sourceDir": resource.NewProperty("/old"), "package": resource.NewProperty("."),
		"digest": resource.NewProperty("sha256:1"),
		"sign":   resource.NewProperty(resource.PropertyMap{"keyFile": resource.NewProperty("k"), "passwordEnv": resource.NewProperty("P")}),
	}, false)
	require.NoError(t, err)
	config, err := testAttrs.toTerraform(resource.PropertyMap{
		"sourceDir": resource.NewProperty("/new"),
		"sign":      resource.NewProperty(resource.PropertyMap{"keyFile": resource.NewProperty("k2")}),
	}, true)
	require.NoError(t, err)
	proposed, err := testAttrs.proposedNew(config, prior)
	require.NoError(t, err)
	got, err := testAttrs.toPulumi(proposed)
	require.NoError(t, err)
	assert.Equal(t, "/new", got["sourceDir"].StringValue(), "the configuration wins")
	assert.Equal(t, ".", got["package"].StringValue(), "a computed attribute the configuration leaves null keeps its state")
	assert.Equal(t, "sha256:1", got["digest"].StringValue())
	assert.Equal(t, "k2", got["sign"].ObjectValue()["keyFile"].StringValue())
	assert.Equal(t, "P", got["sign"].ObjectValue()["passwordEnv"].StringValue(), "nested likewise")
	assert.NotContains(t, got, resource.PropertyKey("platforms"))

	// Creating: no prior state, the computed attributes stay null for the provider to plan.
	proposed, err = testAttrs.proposedNew(config, tftypes.NewValue(testAttrs.objectType(), nil))
	require.NoError(t, err)
	got, err = testAttrs.toPulumi(proposed)
	require.NoError(t, err)
	assert.NotContains(t, got, resource.PropertyKey("digest"))
}

// TestSchema checks the Pulumi schema made from the Terraform provider's.
func TestSchema(t *testing.T) {
	s, err := New(t.Context(), "v1.2.3")
	require.NoError(t, err)
	var pkg struct {
		Name      string
		Version   string
		Provider  resourceSpec
		Resources map[string]resourceSpec
		Types     map[string]objectSpec
	}
	require.NoError(t, json.Unmarshal(s.Schema(), &pkg))
	assert.Equal(t, "shipkit", pkg.Name)
	assert.Equal(t, "1.2.3", pkg.Version)

	img, ok := pkg.Resources["shipkit:index:Image"]
	require.True(t, ok, "shipkit:index:Image")
	assert.Equal(t, []string{"repository", "sourceDir"}, img.RequiredInputs)
	assert.Contains(t, img.InputProperties, "sign")
	assert.NotContains(t, img.InputProperties, "digest", "a computed-only attribute is an output only")
	assert.Contains(t, img.Properties, "digest")
	assert.NotContains(t, img.Properties, "id")
	assert.Equal(t, "#/types/shipkit:index:ImageSign", img.Properties["sign"].Ref)
	assert.Contains(t, pkg.Types["shipkit:index:ImageSign"].Properties, "keyFile")

	rel, ok := pkg.Resources["shipkit:index:Release"]
	require.True(t, ok, "shipkit:index:Release")
	assert.True(t, rel.Properties["secretObjects"].Secret, "secretObjects is secret")
	assert.False(t, rel.Properties["objects"].Secret)
	assert.Equal(t, "object", rel.Properties["objects"].Type)
	assert.Equal(t, "string", rel.Properties["objects"].AdditionalProperties.Type)

	assert.True(t, pkg.Types["shipkit:index:ProviderKubernetes"].Properties["configRaw"].Secret)
	assert.Contains(t, pkg.Provider.InputProperties, "registryInsecure")
}
