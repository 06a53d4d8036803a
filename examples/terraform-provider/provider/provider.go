// Package provider is a Terraform (and OpenTofu) provider built on shipkit, with
// terraform-plugin-framework. It has three resources:
//
//   - shipkit_image builds a Go main package into a multi-arch image index without a
//     Docker daemon (build.GoBuilder), pushes it by digest (build/publish.Index) and, when
//     asked, signs it with a cosign key (sign/cosign). The digest is a computed
//     attribute; a change to the source shows up in the plan as a new source_hash.
//   - shipkit_release renders a kustomize directory or YAML files with the images
//     pinned to their digests (deploy/render), optionally gates them on signatures
//     (deploy/gate) and applies them server-side (deploy/apply) as one ApplySet, so
//     that objects dropped from the release are pruned. The plan shows the objects as
//     YAML, field by field, from deploy/apply's server-side dry run, and a refresh
//     shows drift in the cluster as a diff.
//   - shipkit_gitops_release renders and gates the same way but commits the objects
//     to a directory of a Git repository (deploy/gitops) for Argo CD or Flux to
//     apply: an unchanged release makes no commit, a refresh shows edits pushed to
//     the directory as a diff, and destroy removes the directory.
//
// The provider reports shipkit's progress events to Terraform's log (TF_LOG=debug)
// and nothing to the terminal.
package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// TypeName is the provider's type name: its resources are shipkit_image and
// shipkit_release.
const TypeName = "shipkit"

// Provider is the shipkit provider.
type Provider struct {
	version string
}

var _ provider.Provider = (*Provider)(nil)

// New returns a function that makes the provider, as providerserver.Serve and the
// acceptance tests' provider factories want it. version is reported to Terraform.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &Provider{version: version} }
}

// providerModel is the provider block.
type providerModel struct {
	RegistryInsecure types.Bool       `tfsdk:"registry_insecure"`
	BuildCacheDir    types.String     `tfsdk:"build_cache_dir"`
	Kubernetes       *kubernetesModel `tfsdk:"kubernetes"`
}

// kubernetesModel is the provider's kubernetes attribute.
type kubernetesModel struct {
	ConfigPath    types.String `tfsdk:"config_path"`
	ConfigContext types.String `tfsdk:"config_context"`
	ConfigRaw     types.String `tfsdk:"config_raw"`
}

// Metadata names the provider.
func (p *Provider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = TypeName
	resp.Version = p.version
}

// Schema describes the provider block.
func (p *Provider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Builds, signs and deploys Go services with shipkit: images without a Docker daemon, " +
			"pushed by digest, and releases applied server-side as Kubernetes ApplySets.",
		Attributes: map[string]schema.Attribute{
			"registry_insecure": schema.BoolAttribute{
				Optional: true,
				Description: "Talk plain HTTP to every registry (default false). Registries on loopback " +
					"addresses (127.0.0.1, localhost) are always reached over plain HTTP. Credentials come from " +
					"the Docker config and its credential helpers.",
			},
			"build_cache_dir": schema.StringAttribute{
				Optional: true,
				Description: "Keep built binaries in this directory between builds, so a rebuild with no " +
					"source change skips the link step. Off by default.",
			},
			"kubernetes": schema.SingleNestedAttribute{
				Optional: true,
				Description: "The cluster shipkit_release deploys to. Without it, the kubeconfig of KUBECONFIG " +
					"or ~/.kube/config and its current context.",
				Attributes: map[string]schema.Attribute{
					"config_path": schema.StringAttribute{
						Optional:    true,
						Description: "Path of a kubeconfig file.",
					},
					"config_context": schema.StringAttribute{
						Optional:    true,
						Description: "Context of the kubeconfig to use (default: its current context).",
					},
					"config_raw": schema.StringAttribute{
						Optional:    true,
						Sensitive:   true,
						Description: "A whole kubeconfig, inline, instead of config_path.",
					},
				},
			},
		},
	}
}

// Configure makes the clients the resources share.
func (p *Provider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var kc kubeConfig
	if k := cfg.Kubernetes; k != nil {
		if k.ConfigPath.IsUnknown() || k.ConfigContext.IsUnknown() || k.ConfigRaw.IsUnknown() {
			// Known only after another resource is applied: the resources wait for it.
			resp.Diagnostics.AddWarning("shipkit provider: kubernetes settings not yet known",
				"The kubernetes settings depend on values known only after apply; releases cannot be planned until then.")
			kc.unknown = true
		}
		kc.path, kc.context, kc.raw = k.ConfigPath.ValueString(), k.ConfigContext.ValueString(), k.ConfigRaw.ValueString()
		if kc.path != "" && kc.raw != "" {
			resp.Diagnostics.AddAttributeError(pathKubernetes, "Conflicting kubernetes settings",
				"Set either kubernetes.config_path or kubernetes.config_raw, not both.")
			return
		}
	}
	c := newClients(clientsConfig{
		insecure: cfg.RegistryInsecure.ValueBool(),
		binCache: cfg.BuildCacheDir.ValueString(),
		kube:     kc,
	})
	resp.ResourceData = c
	resp.DataSourceData = c
}

// Resources lists shipkit_image, shipkit_release and shipkit_gitops_release.
func (p *Provider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{NewImageResource, NewReleaseResource, NewGitOpsReleaseResource}
}

// DataSources lists none.
func (p *Provider) DataSources(context.Context) []func() datasource.DataSource { return nil }

// clientsFrom takes the provider's clients out of a resource's Configure request.
func clientsFrom(data any) (*clients, error) {
	if data == nil {
		return nil, nil // the provider is not configured yet (validation)
	}
	c, ok := data.(*clients)
	if !ok {
		return nil, fmt.Errorf("provider data is %T, want *clients: a bug in the shipkit provider", data)
	}
	return c, nil
}
