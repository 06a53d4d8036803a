// Package provider serves shipkit's Terraform provider example (shipkit_image,
// shipkit_release) to the Pulumi engine: it implements Pulumi's resource provider
// gRPC interface (pulumirpc.ResourceProviderServer) by calling the Terraform
// provider's protocol-6 server in process. Every stage (build, push, sign, render,
// gate, server-side dry run, apply with prune) is the Terraform provider's code, so
// the two providers behave alike; this package only translates: schemas, values
// (camelCase properties, secrets, computed values), and the resource lifecycle
// (Check, Diff, Create, Read, Update, Delete onto Terraform's plan, apply and read).
package provider

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	tfprovider "github.com/shipkit/shipkit/examples/terraform-provider/provider"
)

// privateKey is the output property that keeps the Terraform provider's private
// state (opaque bytes, base64) in Pulumi's state; it is not in the schema.
const privateKey = "__tfPrivate"

// ErrTerraform wraps the error diagnostics the Terraform provider returned.
var ErrTerraform = errors.New("shipkit provider")

// Server is the Pulumi resource provider. Make one with New.
type Server struct {
	pulumirpc.UnimplementedResourceProviderServer

	version string
	tf      tfprotov6.ProviderServer
	schema  *tfprotov6.GetProviderSchemaResponse
	json    []byte
}

// New returns the provider of this version, with the Terraform provider's schema
// already translated (an error there is a bug in one of the two).
func New(ctx context.Context, version string) (*Server, error) {
	tf, err := providerserver.NewProtocol6WithError(tfprovider.New(version)())()
	if err != nil {
		return nil, fmt.Errorf("start the Terraform provider: %w", err)
	}
	s, err := tf.GetProviderSchema(ctx, &tfprotov6.GetProviderSchemaRequest{})
	if err != nil {
		return nil, fmt.Errorf("Terraform provider schema: %w", err)
	}
	if err := diagErr(s.Diagnostics); err != nil {
		return nil, fmt.Errorf("Terraform provider schema: %w", err)
	}
	js, err := pulumiSchema(version, s)
	if err != nil {
		return nil, fmt.Errorf("translate the schema: %w", err)
	}
	return &Server{version: version, tf: tf, schema: s, json: js}, nil
}

// Schema returns the Pulumi package schema (JSON).
func (s *Server) Schema() []byte { return s.json }

// diagErr joins error diagnostics into one error, or returns nil.
func diagErr(diags []*tfprotov6.Diagnostic) error {
	var msgs []string
	for _, d := range diags {
		if d.Severity != tfprotov6.DiagnosticSeverityError {
			continue
		}
		m := d.Summary
		if d.Detail != "" {
			m += ": " + d.Detail
		}
		if d.Attribute != nil && len(d.Attribute.Steps()) > 0 {
			m = d.Attribute.String() + ": " + m
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrTerraform, strings.Join(msgs, "; "))
}

// checkFailures turns diagnostics into Pulumi check failures (errors) and a
// message of the warnings.
func checkFailures(diags []*tfprotov6.Diagnostic) []*pulumirpc.CheckFailure {
	var out []*pulumirpc.CheckFailure
	for _, d := range diags {
		if d.Severity != tfprotov6.DiagnosticSeverityError {
			continue
		}
		prop := ""
		if d.Attribute != nil {
			var parts []string
			for _, st := range d.Attribute.Steps() {
				if a, ok := st.(tftypes.AttributeName); ok {
					parts = append(parts, camel(string(a)))
				}
			}
			prop = strings.Join(parts, ".")
		}
		reason := d.Summary
		if d.Detail != "" {
			reason += ": " + d.Detail
		}
		out = append(out, &pulumirpc.CheckFailure{Property: prop, Reason: reason})
	}
	return out
}

var marshal = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, KeepResources: true, SkipNulls: true}

func unmarshal(st *structpb.Struct) (resource.PropertyMap, error) {
	if st == nil {
		return resource.PropertyMap{}, nil
	}
	return plugin.UnmarshalProperties(st, plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, KeepResources: true, SkipNulls: true})
}

// resourceType is the Terraform resource type of a Pulumi type token.
func (s *Server) resourceType(tok string) (string, attrs, error) {
	for n, sch := range s.schema.ResourceSchemas {
		if token(n) == tok {
			return n, sch.Block.Attributes, nil
		}
	}
	return "", nil, status.Errorf(codes.InvalidArgument, "unknown resource type %q", tok)
}

func typeOfURN(urn string) string {
	// urn:pulumi:stack::project::[parent$]type::name
	parts := strings.Split(urn, "::")
	if len(parts) < 4 {
		return ""
	}
	t := parts[2]
	if i := strings.LastIndex(t, "$"); i >= 0 {
		t = t[i+1:]
	}
	return t
}

func dv(typ tftypes.Type, v tftypes.Value) (*tfprotov6.DynamicValue, error) {
	d, err := tfprotov6.NewDynamicValue(typ, v)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// state converts a Pulumi resource's outputs (with its ID) to the Terraform state
// and private bytes.
func (as attrs) state(id string, outputs resource.PropertyMap) (tftypes.Value, []byte, error) {
	pm := outputs.Copy()
	var private []byte
	if p, ok := pm[privateKey]; ok {
		if p := unsecret(p); p.IsString() {
			b, err := base64.StdEncoding.DecodeString(p.StringValue())
			if err != nil {
				return tftypes.Value{}, nil, fmt.Errorf("private state: %w", err)
			}
			private = b
		}
		delete(pm, privateKey)
	}
	if id != "" {
		pm["id"] = resource.NewProperty(id)
	}
	v, err := as.toTerraform(pm, false)
	return v, private, err
}

// outputs converts a Terraform state and private bytes to the Pulumi resource's ID
// and outputs.
func (as attrs) outputs(v tftypes.Value, private []byte) (string, *structpb.Struct, error) {
	id := ""
	if !v.IsNull() && v.IsKnown() {
		var vals map[string]tftypes.Value
		if err := v.As(&vals); err != nil {
			return "", nil, err
		}
		if idv, ok := vals["id"]; ok && idv.IsKnown() && !idv.IsNull() {
			if err := idv.As(&id); err != nil {
				return "", nil, err
			}
		}
	}
	pm, err := as.toPulumi(v)
	if err != nil {
		return "", nil, err
	}
	if len(private) > 0 {
		pm[privateKey] = resource.NewProperty(base64.StdEncoding.EncodeToString(private))
	}
	st, err := plugin.MarshalProperties(pm, marshal)
	return id, st, err
}

// GetPluginInfo reports the provider's version.
func (s *Server) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: strings.TrimPrefix(s.version, "v")}, nil
}

// GetSchema returns the package schema.
func (s *Server) GetSchema(context.Context, *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	return &pulumirpc.GetSchemaResponse{Schema: string(s.json)}, nil
}

// Cancel stops the Terraform provider's work in flight.
func (s *Server) Cancel(ctx context.Context, _ *emptypb.Empty) (*emptypb.Empty, error) {
	_, err := s.tf.StopProvider(ctx, &tfprotov6.StopProviderRequest{})
	return &emptypb.Empty{}, err
}

func (s *Server) providerAttrs() attrs { return s.schema.Provider.Block.Attributes }

// CheckConfig validates the provider's settings with the Terraform provider.
func (s *Server) CheckConfig(ctx context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	news, err := unmarshal(req.News)
	if err != nil {
		return nil, err
	}
	// The engine adds "version" to every provider's inputs; it is not a setting.
	cfg := news.Copy()
	delete(cfg, "version")
	v, err := s.providerAttrs().toTerraform(cfg, true)
	if err != nil {
		return &pulumirpc.CheckResponse{Inputs: req.News, Failures: []*pulumirpc.CheckFailure{{Reason: err.Error()}}}, nil
	}
	d, err := dv(s.providerAttrs().objectType(), v)
	if err != nil {
		return nil, err
	}
	resp, err := s.tf.ValidateProviderConfig(ctx, &tfprotov6.ValidateProviderConfigRequest{Config: d})
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CheckResponse{Inputs: req.News, Failures: checkFailures(resp.Diagnostics)}, nil
}

// DiffConfig reports which provider settings changed; none of them replaces
// resources.
func (s *Server) DiffConfig(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	olds, err := unmarshal(req.OldInputs)
	if err != nil {
		return nil, err
	}
	news, err := unmarshal(req.News)
	if err != nil {
		return nil, err
	}
	var diffs []string
	for _, a := range s.providerAttrs() {
		k := resource.PropertyKey(camel(a.Name))
		if !unsecret(olds[k]).DeepEquals(unsecret(news[k])) {
			diffs = append(diffs, string(k))
		}
	}
	changes := pulumirpc.DiffResponse_DIFF_NONE
	if len(diffs) > 0 {
		changes = pulumirpc.DiffResponse_DIFF_SOME
	}
	return &pulumirpc.DiffResponse{Changes: changes, Diffs: diffs}, nil
}

// Configure configures the Terraform provider. The engine sends secrets as such
// and calls Create and Update in previews too, so that a preview shows what the
// Terraform provider plans (its server-side dry run).
func (s *Server) Configure(ctx context.Context, req *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	args, err := unmarshal(req.Args)
	if err != nil {
		return nil, err
	}
	delete(args, "version")
	v, err := s.providerAttrs().toTerraform(args, true)
	if err != nil {
		return nil, fmt.Errorf("provider settings: %w", err)
	}
	d, err := dv(s.providerAttrs().objectType(), v)
	if err != nil {
		return nil, err
	}
	resp, err := s.tf.ConfigureProvider(ctx, &tfprotov6.ConfigureProviderRequest{Config: d, TerraformVersion: "pulumi"})
	if err != nil {
		return nil, err
	}
	if err := diagErr(resp.Diagnostics); err != nil {
		return nil, fmt.Errorf("configure: %w", err)
	}
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, SupportsPreview: true}, nil
}

// Check validates a resource's inputs with the Terraform provider.
func (s *Server) Check(ctx context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	tfType, as, err := s.resourceType(typeOfURN(req.Urn))
	if err != nil {
		return nil, err
	}
	news, err := unmarshal(req.News)
	if err != nil {
		return nil, err
	}
	v, err := as.toTerraform(news, true)
	if err != nil {
		return &pulumirpc.CheckResponse{Inputs: req.News, Failures: []*pulumirpc.CheckFailure{{Reason: err.Error()}}}, nil
	}
	d, err := dv(as.objectType(), v)
	if err != nil {
		return nil, err
	}
	resp, err := s.tf.ValidateResourceConfig(ctx, &tfprotov6.ValidateResourceConfigRequest{TypeName: tfType, Config: d})
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CheckResponse{Inputs: req.News, Failures: checkFailures(resp.Diagnostics)}, nil
}

// plan runs the Terraform provider's plan of a change from the prior state (null
// to create) to the configuration news.
func (s *Server) plan(ctx context.Context, tfType string, as attrs, id string, olds, news resource.PropertyMap,
) (prior, planned tftypes.Value, private []byte, resp *tfprotov6.PlanResourceChangeResponse, err error) {
	typ := as.objectType()
	prior = tftypes.NewValue(typ, nil)
	if olds != nil {
		if prior, private, err = as.state(id, olds); err != nil {
			return prior, planned, nil, nil, fmt.Errorf("prior state: %w", err)
		}
	}
	config, err := as.toTerraform(news, true)
	if err != nil {
		return prior, planned, nil, nil, fmt.Errorf("inputs: %w", err)
	}
	proposed, err := as.proposedNew(config, prior)
	if err != nil {
		return prior, planned, nil, nil, err
	}
	var pd, cd, nd *tfprotov6.DynamicValue
	if pd, err = dv(typ, prior); err != nil {
		return
	}
	if cd, err = dv(typ, config); err != nil {
		return
	}
	if nd, err = dv(typ, proposed); err != nil {
		return
	}
	resp, err = s.tf.PlanResourceChange(ctx, &tfprotov6.PlanResourceChangeRequest{
		TypeName: tfType, PriorState: pd, ProposedNewState: nd, Config: cd, PriorPrivate: private,
	})
	if err != nil {
		return prior, planned, nil, nil, err
	}
	if err := diagErr(resp.Diagnostics); err != nil {
		return prior, planned, nil, nil, fmt.Errorf("plan: %w", err)
	}
	if resp.PlannedState == nil {
		return prior, planned, nil, nil, fmt.Errorf("plan: %w: no planned state", ErrTerraform)
	}
	planned, err = resp.PlannedState.Unmarshal(typ)
	if err != nil {
		return prior, planned, nil, nil, fmt.Errorf("plan: %w", err)
	}
	return prior, planned, private, resp, nil
}

// apply runs the Terraform provider's apply of a planned change.
func (s *Server) apply(ctx context.Context, tfType string, as attrs, prior, planned tftypes.Value, news resource.PropertyMap, private []byte) (tftypes.Value, []byte, error) {
	typ := as.objectType()
	config := tftypes.NewValue(typ, nil)
	if news != nil {
		var err error
		if config, err = as.toTerraform(news, true); err != nil {
			return tftypes.Value{}, nil, err
		}
	}
	pd, err := dv(typ, prior)
	if err != nil {
		return tftypes.Value{}, nil, err
	}
	nd, err := dv(typ, planned)
	if err != nil {
		return tftypes.Value{}, nil, err
	}
	cd, err := dv(typ, config)
	if err != nil {
		return tftypes.Value{}, nil, err
	}
	resp, err := s.tf.ApplyResourceChange(ctx, &tfprotov6.ApplyResourceChangeRequest{
		TypeName: tfType, PriorState: pd, PlannedState: nd, Config: cd, PlannedPrivate: private,
	})
	if err != nil {
		return tftypes.Value{}, nil, err
	}
	// A failed apply may still return the state it reached; Pulumi keeps only
	// what an error response carries as a partial state, so report the error.
	if err := diagErr(resp.Diagnostics); err != nil {
		return tftypes.Value{}, nil, err
	}
	if resp.NewState == nil {
		return tftypes.NewValue(typ, nil), nil, nil
	}
	v, err := resp.NewState.Unmarshal(typ)
	return v, resp.Private, err
}

// Diff asks the Terraform provider for its plan from the resource's state to the
// new inputs and reports the properties the plan changes. Because the plan runs
// the server-side dry run, a release whose rendered objects changed (an overlay
// edited, a field changed in the cluster and refreshed) shows as an update, and an
// image whose source changed as a rebuild, although no input changed.
func (s *Server) Diff(ctx context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	tfType, as, err := s.resourceType(typeOfURN(req.Urn))
	if err != nil {
		return nil, err
	}
	olds, err := unmarshal(req.Olds)
	if err != nil {
		return nil, err
	}
	news, err := unmarshal(req.News)
	if err != nil {
		return nil, err
	}
	prior, planned, _, resp, err := s.plan(ctx, tfType, as, req.Id, olds, news)
	if err != nil {
		return nil, err
	}
	var priorVals, plannedVals map[string]tftypes.Value
	if err := prior.As(&priorVals); err != nil {
		return nil, err
	}
	if err := planned.As(&plannedVals); err != nil {
		return nil, err
	}
	replace := map[string]bool{}
	for _, p := range resp.RequiresReplace {
		if st := p.Steps(); len(st) > 0 {
			if a, ok := st[0].(tftypes.AttributeName); ok {
				replace[string(a)] = true
			}
		}
	}
	var diffs, replaces []string
	for _, a := range as {
		if a.Name == "id" {
			continue
		}
		if plannedVals[a.Name].Equal(priorVals[a.Name]) {
			continue
		}
		diffs = append(diffs, camel(a.Name))
		if replace[a.Name] {
			replaces = append(replaces, camel(a.Name))
		}
	}
	sort.Strings(diffs)
	sort.Strings(replaces)
	changes := pulumirpc.DiffResponse_DIFF_NONE
	if len(diffs) > 0 {
		changes = pulumirpc.DiffResponse_DIFF_SOME
	}
	return &pulumirpc.DiffResponse{Changes: changes, Diffs: diffs, Replaces: replaces}, nil
}

// Create plans the resource from nothing and, unless previewing, applies the plan.
// A preview returns the plan: values known only after the apply are computed.
func (s *Server) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	tfType, as, err := s.resourceType(typeOfURN(req.Urn))
	if err != nil {
		return nil, err
	}
	news, err := unmarshal(req.Properties)
	if err != nil {
		return nil, err
	}
	prior, planned, _, resp, err := s.plan(ctx, tfType, as, "", nil, news)
	if err != nil {
		return nil, err
	}
	if req.Preview {
		_, st, err := as.outputs(planned, nil)
		return &pulumirpc.CreateResponse{Properties: st}, err
	}
	state, private, err := s.apply(ctx, tfType, as, prior, planned, news, resp.PlannedPrivate)
	if err != nil {
		return nil, err
	}
	id, st, err := as.outputs(state, private)
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, fmt.Errorf("create %s: %w: the state has no id", tfType, ErrTerraform)
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: st}, nil
}

// Update plans the change from the state to the new inputs and, unless
// previewing, applies it.
func (s *Server) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	tfType, as, err := s.resourceType(typeOfURN(req.Urn))
	if err != nil {
		return nil, err
	}
	olds, err := unmarshal(req.Olds)
	if err != nil {
		return nil, err
	}
	news, err := unmarshal(req.News)
	if err != nil {
		return nil, err
	}
	prior, planned, private, resp, err := s.plan(ctx, tfType, as, req.Id, olds, news)
	if err != nil {
		return nil, err
	}
	if req.Preview {
		_, st, err := as.outputs(planned, private)
		return &pulumirpc.UpdateResponse{Properties: st}, err
	}
	state, newPrivate, err := s.apply(ctx, tfType, as, prior, planned, news, resp.PlannedPrivate)
	if err != nil {
		return nil, err
	}
	_, st, err := as.outputs(state, newPrivate)
	return &pulumirpc.UpdateResponse{Properties: st}, err
}

// Read refreshes the resource with the Terraform provider's read: for a release,
// the live objects (drift shows in the next preview); for an image, whether the
// registry still has it and its signature verifies. A resource that is gone has an
// empty ID.
func (s *Server) Read(ctx context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	tfType, as, err := s.resourceType(typeOfURN(req.Urn))
	if err != nil {
		return nil, err
	}
	props, err := unmarshal(req.Properties)
	if err != nil {
		return nil, err
	}
	if len(props) == 0 {
		return nil, status.Errorf(codes.Unimplemented, "%s: import by ID only is not supported by the Pulumi example", tfType)
	}
	current, private, err := as.state(req.Id, props)
	if err != nil {
		return nil, err
	}
	cd, err := dv(as.objectType(), current)
	if err != nil {
		return nil, err
	}
	resp, err := s.tf.ReadResource(ctx, &tfprotov6.ReadResourceRequest{TypeName: tfType, CurrentState: cd, Private: private})
	if err != nil {
		return nil, err
	}
	if err := diagErr(resp.Diagnostics); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if resp.NewState == nil {
		return &pulumirpc.ReadResponse{}, nil
	}
	v, err := resp.NewState.Unmarshal(as.objectType())
	if err != nil {
		return nil, err
	}
	if v.IsNull() {
		return &pulumirpc.ReadResponse{}, nil
	}
	id, st, err := as.outputs(v, resp.Private)
	if err != nil {
		return nil, err
	}
	if id == "" {
		id = req.Id
	}
	return &pulumirpc.ReadResponse{Id: id, Properties: st, Inputs: req.Inputs}, nil
}

// Delete applies the Terraform provider's destroy: a release prunes every object it
// applied, then its ApplySet parent; an image is forgotten.
func (s *Server) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	tfType, as, err := s.resourceType(typeOfURN(req.Urn))
	if err != nil {
		return nil, err
	}
	props, err := unmarshal(req.Properties)
	if err != nil {
		return nil, err
	}
	prior, private, err := as.state(req.Id, props)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.apply(ctx, tfType, as, prior, tftypes.NewValue(as.objectType(), nil), nil, private); err != nil {
		return nil, fmt.Errorf("delete %s: %w", req.Id, err)
	}
	return &emptypb.Empty{}, nil
}
