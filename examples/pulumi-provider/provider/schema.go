package provider

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// The Pulumi package schema is derived from the Terraform provider's schema, so the
// two providers cannot drift apart: shipkit_image is shipkit:index:Image,
// shipkit_release is shipkit:index:Release, attributes become camelCase properties,
// single nested attributes become object types (shipkit:index:ImageSign, ...), and
// sensitive attributes are secret.

// Package is the Pulumi package name, the prefix of every type token.
const Package = "shipkit"

// token is the Pulumi type token of a Terraform resource type: "shipkit_image" ->
// "shipkit:index:Image".
func token(tfType string) string {
	return Package + ":index:" + pascal(strings.TrimPrefix(tfType, Package+"_"))
}

func pascal(name string) string {
	c := camel(name)
	if c == "" {
		return c
	}
	return strings.ToUpper(c[:1]) + c[1:]
}

type propertySpec struct {
	Type                 string        `json:"type,omitempty"`
	Ref                  string        `json:"$ref,omitempty"`
	Items                *propertySpec `json:"items,omitempty"`
	AdditionalProperties *propertySpec `json:"additionalProperties,omitempty"`
	Description          string        `json:"description,omitempty"`
	Secret               bool          `json:"secret,omitempty"`
}

type objectSpec struct {
	Type        string                   `json:"type,omitempty"`
	Description string                   `json:"description,omitempty"`
	Properties  map[string]*propertySpec `json:"properties,omitempty"`
	Required    []string                 `json:"required,omitempty"`
}

type resourceSpec struct {
	objectSpec
	InputProperties map[string]*propertySpec `json:"inputProperties,omitempty"`
	RequiredInputs  []string                 `json:"requiredInputs,omitempty"`
}

type packageSpec struct {
	Name        string                  `json:"name"`
	Version     string                  `json:"version,omitempty"`
	DisplayName string                  `json:"displayName,omitempty"`
	Description string                  `json:"description,omitempty"`
	Provider    resourceSpec            `json:"provider"`
	Resources   map[string]resourceSpec `json:"resources"`
	Types       map[string]objectSpec   `json:"types,omitempty"`
	Language    map[string]any          `json:"language,omitempty"`
	Meta        map[string]string       `json:"meta,omitempty"`
}

// pulumiSchema builds the JSON package schema from the Terraform schema.
func pulumiSchema(version string, tf *tfprotov6.GetProviderSchemaResponse) ([]byte, error) {
	pkg := packageSpec{
		Name:        Package,
		Version:     strings.TrimPrefix(version, "v"),
		DisplayName: "shipkit",
		Description: "Builds, signs and deploys Go services with shipkit: the Terraform provider example's resources on the Pulumi engine.",
		Resources:   map[string]resourceSpec{},
		Types:       map[string]objectSpec{},
	}
	if tf.Provider != nil && tf.Provider.Block != nil {
		r, err := resourceOf(&pkg, "Provider", tf.Provider.Block)
		if err != nil {
			return nil, fmt.Errorf("provider: %w", err)
		}
		pkg.Provider = r
	}
	names := make([]string, 0, len(tf.ResourceSchemas))
	for n := range tf.ResourceSchemas {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := tf.ResourceSchemas[n]
		tok := token(n)
		r, err := resourceOf(&pkg, strings.TrimPrefix(tok, Package+":index:"), s.Block)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		pkg.Resources[tok] = r
	}
	return json.MarshalIndent(pkg, "", "  ")
}

func resourceOf(pkg *packageSpec, typeName string, b *tfprotov6.SchemaBlock) (resourceSpec, error) {
	if len(b.BlockTypes) > 0 {
		return resourceSpec{}, fmt.Errorf("nested blocks are not supported (only nested attributes)")
	}
	r := resourceSpec{
		objectSpec:      objectSpec{Description: b.Description, Properties: map[string]*propertySpec{}},
		InputProperties: map[string]*propertySpec{},
	}
	for _, a := range b.Attributes {
		if a.Name == "id" {
			continue // the resource's ID
		}
		p, err := propertyOf(pkg, typeName, a)
		if err != nil {
			return resourceSpec{}, fmt.Errorf("%s: %w", a.Name, err)
		}
		name := camel(a.Name)
		r.Properties[name] = p
		if a.Required || a.Computed {
			r.Required = append(r.Required, name)
		}
		if a.Required || a.Optional {
			r.InputProperties[name] = p
		}
		if a.Required {
			r.RequiredInputs = append(r.RequiredInputs, name)
		}
	}
	sort.Strings(r.Required)
	sort.Strings(r.RequiredInputs)
	return r, nil
}

func propertyOf(pkg *packageSpec, typeName string, a *tfprotov6.SchemaAttribute) (*propertySpec, error) {
	if a.NestedType != nil {
		if a.NestedType.Nesting != tfprotov6.SchemaObjectNestingModeSingle {
			return nil, fmt.Errorf("only single nested attributes are supported")
		}
		name := typeName + pascal(a.Name)
		obj := objectSpec{Type: "object", Description: a.Description, Properties: map[string]*propertySpec{}}
		for _, n := range a.NestedType.Attributes {
			p, err := propertyOf(pkg, name, n)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", n.Name, err)
			}
			obj.Properties[camel(n.Name)] = p
			if n.Required {
				obj.Required = append(obj.Required, camel(n.Name))
			}
		}
		sort.Strings(obj.Required)
		tok := Package + ":index:" + name
		pkg.Types[tok] = obj
		return &propertySpec{Ref: "#/types/" + tok, Description: a.Description, Secret: a.Sensitive}, nil
	}
	p, err := typeSpec(a.Type)
	if err != nil {
		return nil, err
	}
	p.Description = a.Description
	p.Secret = a.Sensitive
	return p, nil
}

func typeSpec(t tftypes.Type) (*propertySpec, error) {
	switch {
	case t.Is(tftypes.String):
		return &propertySpec{Type: "string"}, nil
	case t.Is(tftypes.Bool):
		return &propertySpec{Type: "boolean"}, nil
	case t.Is(tftypes.Number):
		return &propertySpec{Type: "number"}, nil
	case t.Is(tftypes.List{}):
		items, err := typeSpec(t.(tftypes.List).ElementType)
		if err != nil {
			return nil, err
		}
		return &propertySpec{Type: "array", Items: items}, nil
	case t.Is(tftypes.Set{}):
		items, err := typeSpec(t.(tftypes.Set).ElementType)
		if err != nil {
			return nil, err
		}
		return &propertySpec{Type: "array", Items: items}, nil
	case t.Is(tftypes.Map{}):
		items, err := typeSpec(t.(tftypes.Map).ElementType)
		if err != nil {
			return nil, err
		}
		return &propertySpec{Type: "object", AdditionalProperties: items}, nil
	}
	return nil, fmt.Errorf("unsupported Terraform type %s", t)
}
