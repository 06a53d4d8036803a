package provider

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/scan/policy"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// gateModel is shipkit_release's gate attribute.
type gateModel struct {
	PublicKeys          types.List   `tfsdk:"public_keys"`
	Threshold           types.Int64  `tfsdk:"threshold"`
	RequireAttestations types.List   `tfsdk:"require_attestations"`
	FailOn              types.String `tfsdk:"fail_on"`
	MaxReportAge        types.String `tfsdk:"max_report_age"`
	PodSecurity         types.String `tfsdk:"pod_security"`
	DisableRules        types.Map    `tfsdk:"disable_rules"`
	Registries          types.List   `tfsdk:"registries"`
	InsecureRegistries  types.List   `tfsdk:"insecure_registries"`
}

func gateSchema() schema.Attribute {
	return schema.SingleNestedAttribute{
		Optional: true,
		Description: "Check the objects with shipkit's deploy gate before every apply: every container image " +
			"must be pinned by digest and, with public_keys, signed. A denial fails the apply with every reason, " +
			"and nothing is applied. A plan whose images are known runs the gate too and warns about a denial " +
			"(other resources of the same apply may still sign the image).",
		Attributes: map[string]schema.Attribute{
			"public_keys": schema.ListAttribute{
				ElementType: types.StringType, Optional: true,
				Description: "Trusted cosign public keys, PEM (e.g. file(\"cosign.pub\")): every image must be signed by one.",
			},
			"threshold": schema.Int64Attribute{
				Optional:    true,
				Description: "How many distinct trusted keys must have signed each image (default 1).",
			},
			"require_attestations": schema.ListAttribute{
				ElementType: types.StringType, Optional: true,
				Description: "Predicate types a trusted key must have attested, e.g. https://slsa.dev/provenance/v1.",
			},
			"pod_security": schema.StringAttribute{
				Optional: true,
				Description: "Check the manifests against this Pod Security Standards level (privileged, baseline, " +
					"restricted) and shipkit's hardening rules (scan/policy): resources set, read-only root " +
					"filesystem, no privilege escalation, seccomp, no plaintext Secrets. Default: no manifest policy.",
			},
			"disable_rules": schema.MapAttribute{
				ElementType: types.StringType, Optional: true,
				Description: "Manifest rules to switch off, by rule id, each with the reason (kept in the gate's report), " +
					"e.g. { \"read-only-root-fs\" = \"writes its cache to /tmp\" }. Needs pod_security.",
			},
			"fail_on": schema.StringAttribute{
				Optional: true,
				Description: "Deny an image whose newest attested vulnerability report (shipkit, grype or Trivy " +
					"JSON) has a finding at or above this severity (negligible, low, medium, high, critical), " +
					"or that has none, or one that cannot be read, or one older than max_report_age.",
			},
			"registries": schema.ListAttribute{
				ElementType: types.StringType, Optional: true,
				Description: "The registries the gate may read signatures from (host[:port], or \"*.example.com\"); " +
					"with this or insecure_registries set, an image from any other registry is denied without a request. " +
					"Unset: any registry over HTTPS.",
			},
			"insecure_registries": schema.ListAttribute{
				ElementType: types.StringType, Optional: true,
				Description: "Registries (host:port) the gate may read over plain HTTP. Without it, an image the verifier " +
					"would read over plain HTTP (localhost, loopback or private addresses) is denied.",
			},
			"max_report_age": schema.StringAttribute{
				Optional: true,
				Description: "How old the newest vulnerability report that fail_on reads may be, as a Go duration " +
					"(e.g. \"72h\"); \"none\" accepts any age. Default 168h (a week). Attestations live under a " +
					"mutable tag: deleting the newest report lets an older one decide, and this bounds how old " +
					"that one can be. Re-scan and re-attest images at least this often. Needs fail_on.",
			},
		},
	}
}

// gateKnown reports whether the gate settings are known (or absent).
func gateKnown(o types.Object) bool {
	if o.IsNull() {
		return true
	}
	if o.IsUnknown() {
		return false
	}
	for _, v := range o.Attributes() {
		if v.IsUnknown() {
			return false
		}
		if l, ok := v.(types.List); ok {
			for _, e := range l.Elements() {
				if e.IsUnknown() {
					return false
				}
			}
		}
	}
	return true
}

// validateGate checks the gate settings that are known.
func validateGate(ctx context.Context, o types.Object) diag.Diagnostics {
	if !gateKnown(o) || o.IsNull() {
		return nil
	}
	_, diags := newGate(ctx, o, nil)
	return diags
}

// checkGate runs the gate, when configured, on objs: a denial or a failure to decide
// is an error naming every reason.
func (r *ReleaseResource) checkGate(ctx context.Context, o types.Object, objs []*unstructured.Unstructured) diag.Diagnostics {
	if o.IsNull() {
		return nil
	}
	g, diags := newGate(ctx, o, r.c)
	if diags.HasError() {
		return diags
	}
	d, err := g.Check(ctx, objs)
	if err != nil {
		diags.AddError("shipkit_release: gate", err.Error())
		return diags
	}
	if !d.Allowed() {
		diags.AddAttributeError(path.Root("gate"), "shipkit_release: denied by the deploy gate", d.String())
	}
	return diags
}

// newGate makes the gate of the settings; c gives the registry access of the
// verifier (nil: only validate).
func newGate(ctx context.Context, o types.Object, c *clients) (*gate.Gate, diag.Diagnostics) {
	var m gateModel
	diags := o.As(ctx, &m, basetypes.ObjectAsOptions{})
	if diags.HasError() {
		return nil, diags
	}
	var keys, predicates []string
	var regs gate.Registries
	diags.Append(m.PublicKeys.ElementsAs(ctx, &keys, true)...)
	diags.Append(m.RequireAttestations.ElementsAs(ctx, &predicates, true)...)
	diags.Append(m.Registries.ElementsAs(ctx, &regs.Hosts, true)...)
	diags.Append(m.InsecureRegistries.ElementsAs(ctx, &regs.Insecure, true)...)
	if diags.HasError() {
		return nil, diags
	}
	var opts []gate.Option
	allowList := !m.Registries.IsNull() || !m.InsecureRegistries.IsNull()
	if allowList {
		opts = append(opts, gate.WithRegistries(regs))
	}
	if len(keys) > 0 {
		p := sign.Policy{Threshold: int(m.Threshold.ValueInt64())}
		for _, k := range keys {
			p.TrustedKeys = append(p.TrustedKeys, sign.TrustedKey{PEM: []byte(k)})
		}
		var vopts []cosign.Option
		if c != nil {
			vopts = append(vopts, cosign.WithKeychain(c.keychain))
		}
		if allowList && c != nil {
			// The allow-list is checked on the images' names; the transport keeps
			// the verifier's redirects and DNS to it.
			rt, err := regs.Transport(nil)
			if err != nil {
				diags.AddAttributeError(path.Root("gate").AtName("registries"), "Invalid registries", err.Error())
				return nil, diags
			}
			vopts = append(vopts, cosign.WithTransport(rt))
		}
		v, err := cosign.NewVerifier(p, vopts...)
		if err != nil {
			diags.AddAttributeError(path.Root("gate").AtName("public_keys"), "Invalid gate keys", err.Error())
			return nil, diags
		}
		opts = append(opts, gate.WithVerifier(v))
	} else if !m.Threshold.IsNull() {
		diags.AddAttributeError(path.Root("gate").AtName("threshold"), "Invalid gate", "threshold needs public_keys")
	}
	if len(predicates) > 0 {
		opts = append(opts, gate.RequireAttestations(predicates...))
	}
	if !m.FailOn.IsNull() {
		s, err := report.ParseThreshold(m.FailOn.ValueString())
		if err != nil {
			diags.AddAttributeError(path.Root("gate").AtName("fail_on"), "Invalid severity", err.Error())
		}
		opts = append(opts, gate.FailOn(s))
	}
	if !m.MaxReportAge.IsNull() {
		age := sign.NoMaxReportAge
		if v := m.MaxReportAge.ValueString(); v != "none" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				diags.AddAttributeError(path.Root("gate").AtName("max_report_age"), "Invalid report age",
					"want a positive duration such as \"72h\", or \"none\" for any age")
			}
			age = d
		}
		opts = append(opts, gate.MaxReportAge(age))
	}
	if !m.PodSecurity.IsNull() {
		p, d := manifestPolicy(ctx, m)
		if diags.Append(d...); p != nil {
			opts = append(opts, gate.WithManifestPolicy(p))
		}
	} else if !m.DisableRules.IsNull() {
		diags.AddAttributeError(path.Root("gate").AtName("disable_rules"), "Invalid gate", "disable_rules needs pod_security")
	}
	if diags.HasError() {
		return nil, diags
	}
	if c != nil {
		opts = append(opts, gate.WithObserver(logObserver{ctx}))
	}
	g, err := gate.New(opts...)
	if err != nil {
		diags.AddAttributeError(path.Root("gate"), "Invalid gate", fmt.Sprintf("%v (require_attestations and fail_on need public_keys)", err))
		return nil, diags
	}
	return g, diags
}

// manifestPolicy makes the gate's manifest policy: a Pod Security level and the
// hardening rules, less the ones switched off.
func manifestPolicy(ctx context.Context, m gateModel) (*policy.Checker, diag.Diagnostics) {
	var diags diag.Diagnostics
	level, err := policy.ParseLevel(m.PodSecurity.ValueString())
	if err != nil {
		diags.AddAttributeError(path.Root("gate").AtName("pod_security"), "Invalid Pod Security level", err.Error())
		return nil, diags
	}
	opts := []policy.Option{policy.WithLevel(level)}
	var disabled map[string]string
	if diags.Append(m.DisableRules.ElementsAs(ctx, &disabled, true)...); diags.HasError() {
		return nil, diags
	}
	rules := make([]string, 0, len(disabled))
	for r := range disabled {
		rules = append(rules, r)
	}
	slices.Sort(rules)
	for _, r := range rules {
		opts = append(opts, policy.Disable(r, disabled[r]))
	}
	p, err := policy.New(opts...)
	if err != nil {
		diags.AddAttributeError(path.Root("gate").AtName("disable_rules"), "Invalid manifest policy", err.Error())
		return nil, diags
	}
	return p, diags
}
