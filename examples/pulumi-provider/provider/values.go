package provider

import (
	"encoding/json"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// Values cross between the two engines here: Pulumi's property values (camelCase
// keys, secrets, computed values) and Terraform's typed values (snake_case
// attributes, unknown values), with the Terraform schema saying which is which.

// camel turns a Terraform attribute name into a Pulumi property name:
// "source_dir" -> "sourceDir".
func camel(name string) string {
	parts := strings.Split(name, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// attrs is the attribute list of an object: a resource's block or a nested attribute.
type attrs []*tfprotov6.SchemaAttribute

// objectType is the Terraform type of an object with these attributes.
func (as attrs) objectType() tftypes.Object {
	types := make(map[string]tftypes.Type, len(as))
	for _, a := range as {
		types[a.Name] = a.ValueType()
	}
	return tftypes.Object{AttributeTypes: types}
}

// nested returns the attributes of a single nested attribute, or nil.
func nested(a *tfprotov6.SchemaAttribute) attrs {
	if a.NestedType != nil && a.NestedType.Nesting == tfprotov6.SchemaObjectNestingModeSingle {
		return a.NestedType.Attributes
	}
	return nil
}

// toTerraform converts Pulumi properties to a Terraform object of these attributes.
// skipComputedOnly leaves attributes that only the provider sets null, as in a
// configuration. Secrets are unwrapped: the Terraform provider marks what is
// sensitive itself.
func (as attrs) toTerraform(pm resource.PropertyMap, skipComputedOnly bool) (tftypes.Value, error) {
	vals := make(map[string]tftypes.Value, len(as))
	for _, a := range as {
		typ := a.ValueType()
		if skipComputedOnly && a.Computed && !a.Optional && !a.Required {
			vals[a.Name] = tftypes.NewValue(typ, nil)
			continue
		}
		pv, ok := pm[resource.PropertyKey(camel(a.Name))]
		if !ok {
			vals[a.Name] = tftypes.NewValue(typ, nil)
			continue
		}
		var (
			v   tftypes.Value
			err error
		)
		if sub := nested(a); sub != nil {
			v, err = sub.objectToTerraform(pv, skipComputedOnly)
		} else {
			v, err = valueToTerraform(typ, pv)
		}
		if err != nil {
			return tftypes.Value{}, fmt.Errorf("%s: %w", camel(a.Name), err)
		}
		vals[a.Name] = v
	}
	return tftypes.NewValue(as.objectType(), vals), nil
}

func (as attrs) objectToTerraform(pv resource.PropertyValue, skipComputedOnly bool) (tftypes.Value, error) {
	pv = unsecret(pv)
	// Some Pulumi language SDKs send a provider's object-valued settings JSON-encoded.
	if pv.IsString() && strings.HasPrefix(strings.TrimSpace(pv.StringValue()), "{") {
		var m map[string]any
		if err := json.Unmarshal([]byte(pv.StringValue()), &m); err != nil {
			return tftypes.Value{}, fmt.Errorf("want an object, got a string that is not a JSON object: %w", err)
		}
		pv = resource.NewObjectProperty(resource.NewPropertyMapFromMap(m))
	}
	switch {
	case pv.IsComputed() || (pv.IsOutput() && !pv.OutputValue().Known):
		return tftypes.NewValue(as.objectType(), tftypes.UnknownValue), nil
	case pv.IsOutput():
		return as.objectToTerraform(pv.OutputValue().Element, skipComputedOnly)
	case pv.IsNull():
		return tftypes.NewValue(as.objectType(), nil), nil
	case pv.IsObject():
		return as.toTerraform(pv.ObjectValue(), skipComputedOnly)
	}
	return tftypes.Value{}, fmt.Errorf("want an object, got %s", pv.TypeString())
}

func unsecret(pv resource.PropertyValue) resource.PropertyValue {
	for pv.IsSecret() {
		pv = pv.SecretValue().Element
	}
	return pv
}

// valueToTerraform converts a Pulumi value of a plain (not nested) attribute.
func valueToTerraform(typ tftypes.Type, pv resource.PropertyValue) (tftypes.Value, error) {
	pv = unsecret(pv)
	if pv.IsComputed() || (pv.IsOutput() && !pv.OutputValue().Known) {
		return tftypes.NewValue(typ, tftypes.UnknownValue), nil
	}
	if pv.IsOutput() {
		return valueToTerraform(typ, pv.OutputValue().Element)
	}
	if pv.IsNull() {
		return tftypes.NewValue(typ, nil), nil
	}
	switch {
	case typ.Is(tftypes.String):
		if !pv.IsString() {
			return tftypes.Value{}, fmt.Errorf("want a string, got %s", pv.TypeString())
		}
		return tftypes.NewValue(typ, pv.StringValue()), nil
	case typ.Is(tftypes.Bool):
		if pv.IsString() { // a provider setting from stack configuration
			b, err := strconv.ParseBool(pv.StringValue())
			if err != nil {
				return tftypes.Value{}, fmt.Errorf("want a bool: %w", err)
			}
			return tftypes.NewValue(typ, b), nil
		}
		if !pv.IsBool() {
			return tftypes.Value{}, fmt.Errorf("want a bool, got %s", pv.TypeString())
		}
		return tftypes.NewValue(typ, pv.BoolValue()), nil
	case typ.Is(tftypes.Number):
		if !pv.IsNumber() {
			return tftypes.Value{}, fmt.Errorf("want a number, got %s", pv.TypeString())
		}
		return tftypes.NewValue(typ, big.NewFloat(pv.NumberValue())), nil
	case typ.Is(tftypes.List{}) || typ.Is(tftypes.Set{}):
		if !pv.IsArray() {
			return tftypes.Value{}, fmt.Errorf("want a list, got %s", pv.TypeString())
		}
		var elem tftypes.Type
		if l, ok := typ.(tftypes.List); ok {
			elem = l.ElementType
		} else {
			elem = typ.(tftypes.Set).ElementType
		}
		out := make([]tftypes.Value, 0, len(pv.ArrayValue()))
		for i, e := range pv.ArrayValue() {
			v, err := valueToTerraform(elem, e)
			if err != nil {
				return tftypes.Value{}, fmt.Errorf("[%d]: %w", i, err)
			}
			out = append(out, v)
		}
		return tftypes.NewValue(typ, out), nil
	case typ.Is(tftypes.Map{}):
		if !pv.IsObject() {
			return tftypes.Value{}, fmt.Errorf("want a map, got %s", pv.TypeString())
		}
		elem := typ.(tftypes.Map).ElementType
		out := make(map[string]tftypes.Value, len(pv.ObjectValue()))
		for k, e := range pv.ObjectValue() {
			v, err := valueToTerraform(elem, e)
			if err != nil {
				return tftypes.Value{}, fmt.Errorf("[%q]: %w", k, err)
			}
			out[string(k)] = v
		}
		return tftypes.NewValue(typ, out), nil
	}
	return tftypes.Value{}, fmt.Errorf("unsupported Terraform type %s", typ)
}

// toPulumi converts a Terraform object of these attributes to Pulumi properties.
// Unknown values become computed ones; sensitive attributes become secrets; the
// attribute "id" is left out (it is the resource's ID in Pulumi).
func (as attrs) toPulumi(v tftypes.Value) (resource.PropertyMap, error) {
	pm := resource.PropertyMap{}
	if v.IsNull() {
		return pm, nil
	}
	var vals map[string]tftypes.Value
	if err := v.As(&vals); err != nil {
		return nil, err
	}
	for _, a := range as {
		if a.Name == "id" {
			continue
		}
		av, ok := vals[a.Name]
		if !ok || av.IsNull() {
			continue
		}
		var (
			pv  resource.PropertyValue
			err error
		)
		if sub := nested(a); sub != nil && av.IsKnown() {
			var m resource.PropertyMap
			m, err = sub.toPulumi(av)
			pv = resource.NewObjectProperty(m)
		} else {
			pv, err = valueToPulumi(av)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.Name, err)
		}
		if a.Sensitive {
			pv = resource.MakeSecret(pv)
		}
		pm[resource.PropertyKey(camel(a.Name))] = pv
	}
	return pm, nil
}

// valueToPulumi converts a Terraform value of a plain attribute.
func valueToPulumi(v tftypes.Value) (resource.PropertyValue, error) {
	if !v.IsKnown() {
		return resource.MakeComputed(resource.NewProperty("")), nil
	}
	if v.IsNull() {
		return resource.NewNullProperty(), nil
	}
	typ := v.Type()
	switch {
	case typ.Is(tftypes.String):
		var s string
		err := v.As(&s)
		return resource.NewProperty(s), err
	case typ.Is(tftypes.Bool):
		var b bool
		err := v.As(&b)
		return resource.NewProperty(b), err
	case typ.Is(tftypes.Number):
		var f big.Float
		if err := v.As(&f); err != nil {
			return resource.PropertyValue{}, err
		}
		n, _ := f.Float64()
		return resource.NewProperty(n), nil
	case typ.Is(tftypes.List{}) || typ.Is(tftypes.Set{}):
		var elems []tftypes.Value
		if err := v.As(&elems); err != nil {
			return resource.PropertyValue{}, err
		}
		out := make([]resource.PropertyValue, 0, len(elems))
		for _, e := range elems {
			pv, err := valueToPulumi(e)
			if err != nil {
				return resource.PropertyValue{}, err
			}
			out = append(out, pv)
		}
		return resource.NewProperty(out), nil
	case typ.Is(tftypes.Map{}) || typ.Is(tftypes.Object{}):
		var elems map[string]tftypes.Value
		if err := v.As(&elems); err != nil {
			return resource.PropertyValue{}, err
		}
		keys := make([]string, 0, len(elems))
		for k := range elems {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := resource.PropertyMap{}
		for _, k := range keys {
			pv, err := valueToPulumi(elems[k])
			if err != nil {
				return resource.PropertyValue{}, err
			}
			out[resource.PropertyKey(k)] = pv
		}
		return resource.NewProperty(out), nil
	}
	return resource.PropertyValue{}, fmt.Errorf("unsupported Terraform type %s", typ)
}

// proposedNew is what Terraform core proposes as the new state: the configuration,
// with each computed attribute the configuration leaves null taken from the prior
// state (nested objects likewise). The provider's plan starts from it.
func (as attrs) proposedNew(config, prior tftypes.Value) (tftypes.Value, error) {
	if config.IsNull() || !config.IsKnown() {
		return config, nil
	}
	var cfg, old map[string]tftypes.Value
	if err := config.As(&cfg); err != nil {
		return tftypes.Value{}, err
	}
	if !prior.IsNull() && prior.IsKnown() {
		if err := prior.As(&old); err != nil {
			return tftypes.Value{}, err
		}
	}
	out := make(map[string]tftypes.Value, len(as))
	for _, a := range as {
		c := cfg[a.Name]
		p, hasPrior := old[a.Name]
		if !hasPrior {
			p = tftypes.NewValue(a.ValueType(), nil)
		}
		switch sub := nested(a); {
		case a.Computed && c.IsNull():
			out[a.Name] = p
		case sub != nil:
			v, err := sub.proposedNew(c, p)
			if err != nil {
				return tftypes.Value{}, err
			}
			out[a.Name] = v
		default:
			out[a.Name] = c
		}
	}
	return tftypes.NewValue(as.objectType(), out), nil
}
