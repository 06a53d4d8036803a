package provider

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/shipkit/shipkit/sign"
)

// privateKeyPublicKey is where an image's private state keeps the public key of the
// key that signed it, so that a refresh can check the signature without the password.
const privateKeyPublicKey = "public_key"

// ImageResource is shipkit_image: a Go main package built into an image index,
// pushed by digest and optionally signed.
type ImageResource struct {
	c *clients
}

var (
	_ resource.ResourceWithConfigure      = (*ImageResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*ImageResource)(nil)
	_ resource.ResourceWithImportState    = (*ImageResource)(nil)
	_ resource.ResourceWithValidateConfig = (*ImageResource)(nil)
)

// NewImageResource returns the shipkit_image resource.
func NewImageResource() resource.Resource { return &ImageResource{} }

// imageModel is shipkit_image's configuration and state.
type imageModel struct {
	ID         types.String `tfsdk:"id"`
	SourceDir  types.String `tfsdk:"source_dir"`
	Package    types.String `tfsdk:"package"`
	Repository types.String `tfsdk:"repository"`
	Platforms  types.List   `tfsdk:"platforms"`
	Base       types.String `tfsdk:"base"`
	Ldflags    types.String `tfsdk:"ldflags"`
	Sign       types.Object `tfsdk:"sign"`
	SourceHash types.String `tfsdk:"source_hash"`
	Digest     types.String `tfsdk:"digest"`
	Image      types.String `tfsdk:"image"`
	SignedBy   types.String `tfsdk:"signed_by"`
}

// signModel is the sign attribute.
type signModel struct {
	KeyFile     types.String `tfsdk:"key_file"`
	KeyEnv      types.String `tfsdk:"key_env"`
	PasswordEnv types.String `tfsdk:"password_env"`
}

var signAttrTypes = map[string]attr.Type{"key_file": types.StringType, "key_env": types.StringType, "password_env": types.StringType}

// Metadata names the resource shipkit_image.
func (r *ImageResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_image"
}

// Schema describes shipkit_image.
func (r *ImageResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "A Go main package built into an OCI image index (one image per platform) without a Docker " +
			"daemon, reproducibly, pushed to a registry by digest and optionally signed with a cosign key. " +
			"The plan rebuilds it when the source changes (source_hash). Destroying it forgets the image; " +
			"nothing is deleted from the registry. Import it by digest: repository@sha256:HEX.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:    true,
				Description: "The pushed index by digest, repository@sha256:HEX (the same as image).",
			},
			"source_dir": schema.StringAttribute{
				Required:    true,
				Description: "A directory inside the Go main module to build from.",
			},
			"package": schema.StringAttribute{
				Optional: true, Computed: true, Default: stringdefault.StaticString("."),
				Description: "The main package to build, relative to source_dir, e.g. ./cmd/server (default \".\").",
			},
			"repository": schema.StringAttribute{
				Required:    true,
				Description: "The repository to push to, e.g. registry.example.com/team/app.",
			},
			"platforms": schema.ListAttribute{
				ElementType: types.StringType,
				Optional:    true, Computed: true,
				Default:     listdefault.StaticValue(types.ListValueMust(types.StringType, []attr.Value{types.StringValue("linux/amd64")})),
				Description: "The platforms to build, e.g. [\"linux/amd64\", \"linux/arm64\"] (default linux/amd64).",
			},
			"base": schema.StringAttribute{
				Optional:    true,
				Description: "The base image, e.g. gcr.io/distroless/static:nonroot (default: a static base written by shipkit: CA certificates, tzdata and a nonroot user).",
			},
			"ldflags": schema.StringAttribute{
				Optional:    true,
				Description: "The -ldflags of go build, e.g. \"-s -w -X main.version=1.2\".",
			},
			"sign": schema.SingleNestedAttribute{
				Optional:    true,
				Description: "Sign the pushed index with a cosign key (offline: no transparency log).",
				Attributes: map[string]schema.Attribute{
					"key_file": schema.StringAttribute{
						Optional:    true,
						Description: "A cosign private key file (cosign.key). Set key_file or key_env.",
					},
					"key_env": schema.StringAttribute{
						Optional:    true,
						Description: "The environment variable that holds a cosign private key, PEM encoded.",
					},
					"password_env": schema.StringAttribute{
						Optional: true, Computed: true, Default: stringdefault.StaticString(DefaultPasswordEnv),
						Description: "The environment variable that holds the key's password (default COSIGN_PASSWORD). " +
							"The password itself never enters the configuration or the state.",
					},
				},
			},
			"source_hash": schema.StringAttribute{
				Computed: true,
				Description: "SHA-256 of what the build compiles: the files of the main module's packages it imports, " +
					"go.mod, go.sum, the versions of the other modules and the Go version. A change rebuilds the image.",
			},
			"digest": schema.StringAttribute{
				Computed:    true,
				Description: "The digest of the pushed image index, sha256:HEX.",
			},
			"image": schema.StringAttribute{
				Computed:    true,
				Description: "The pushed index by digest, repository@sha256:HEX: what a release pins its containers to.",
			},
			"signed_by": schema.StringAttribute{
				Computed: true,
				Description: "The fingerprint of the key that signed the image (sha256: and 16 hex digits); empty " +
					"when a refresh finds the signature gone, which plans a new signature.",
			},
		},
	}
}

// Configure takes the provider's clients.
func (r *ImageResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	c, err := clientsFrom(req.ProviderData)
	if err != nil {
		resp.Diagnostics.AddError("shipkit_image: configure", err.Error())
		return
	}
	r.c = c
}

// ValidateConfig checks what can be checked without building.
func (r *ImageResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m imageModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if known(m.Repository) {
		if _, err := name.NewRepository(m.Repository.ValueString()); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("repository"), "Invalid repository", err.Error())
		}
	}
	if known(m.Base) {
		if _, err := name.ParseReference(m.Base.ValueString()); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("base"), "Invalid base image", err.Error())
		}
	}
	if !m.Platforms.IsNull() && !m.Platforms.IsUnknown() {
		for i, p := range m.Platforms.Elements() {
			s, ok := p.(types.String)
			if !ok || s.IsUnknown() {
				continue
			}
			if pl, err := v1.ParsePlatform(s.ValueString()); err != nil || pl.OS == "" || pl.Architecture == "" {
				resp.Diagnostics.AddAttributeError(path.Root("platforms").AtListIndex(i), "Invalid platform",
					fmt.Sprintf("%q: want os/arch[/variant], e.g. linux/arm64", s.ValueString()))
			}
		}
	}
	if !m.Sign.IsNull() && !m.Sign.IsUnknown() {
		var s signModel
		resp.Diagnostics.Append(m.Sign.As(ctx, &s, basetypes.ObjectAsOptions{})...)
		if resp.Diagnostics.HasError() {
			return
		}
		file, env := !s.KeyFile.IsNull(), !s.KeyEnv.IsNull()
		if file == env {
			resp.Diagnostics.AddAttributeError(path.Root("sign"), "Invalid sign settings",
				"Set exactly one of sign.key_file and sign.key_env.")
		}
	}
}

// ModifyPlan computes the source hash and plans a rebuild when it, or any input,
// changed; a signature a refresh found gone plans a new one.
func (r *ImageResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.c == nil {
		return // destroy, or the provider is not configured yet
	}
	var plan, state imageModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	creating := req.State.Raw.IsNull()
	if !creating {
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	plan.SourceHash = types.StringUnknown()
	if known(plan.SourceDir) && known(plan.Package) && !plan.Platforms.IsUnknown() {
		platforms, diags := stringList(ctx, plan.Platforms)
		resp.Diagnostics.Append(diags...)
		if diags.HasError() {
			return
		}
		p, err := v1.ParsePlatform(platforms[0])
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("platforms"), "Invalid platform", err.Error())
			return
		}
		h, err := sourceHash(ctx, plan.SourceDir.ValueString(), plan.Package.ValueString(), p.OS, p.Architecture)
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("source_dir"), "Cannot read the Go source", err.Error())
			return
		}
		plan.SourceHash = types.StringValue(h)
	}
	if creating {
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	// The source hash stands for source_dir and package: the same source moved to
	// another checkout, or the same package spelled another way, builds the same image.
	rebuild := !plan.SourceHash.Equal(state.SourceHash) || !plan.Repository.Equal(state.Repository) ||
		!plan.Platforms.Equal(state.Platforms) || !plan.Base.Equal(state.Base) || !plan.Ldflags.Equal(state.Ldflags)
	resign := !plan.Sign.Equal(state.Sign) || (!plan.Sign.IsNull() && state.SignedBy.ValueString() == "")
	keep := func(planned *types.String, prior types.String, changes bool) {
		if changes {
			*planned = types.StringUnknown()
		} else {
			*planned = prior
		}
	}
	keep(&plan.ID, state.ID, rebuild)
	keep(&plan.Digest, state.Digest, rebuild)
	keep(&plan.Image, state.Image, rebuild)
	keep(&plan.SignedBy, state.SignedBy, rebuild || resign)
	if plan.Sign.IsNull() {
		plan.SignedBy = types.StringNull()
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

// Create builds, pushes and signs the image.
func (r *ImageResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan imageModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.build(ctx, &plan, resp.Private, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// Update rebuilds the image when its inputs changed, and signs it again when asked.
func (r *ImageResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state imageModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if plan.Digest.IsUnknown() {
		r.build(ctx, &plan, resp.Private, &resp.Diagnostics)
	} else if plan.SignedBy.IsUnknown() {
		r.sign(ctx, &plan, resp.Private, &resp.Diagnostics)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// privateSetter is the private state of a create or update response.
type privateSetter interface {
	SetKey(ctx context.Context, key string, value []byte) diag.Diagnostics
}

// build builds and pushes m's image, signs it when m asks, and fills in the
// computed attributes.
func (r *ImageResource) build(ctx context.Context, m *imageModel, priv privateSetter, diags *diag.Diagnostics) {
	spec, d := r.spec(ctx, m)
	if diags.Append(d...); diags.HasError() {
		return
	}
	digest, err := r.c.buildAndPush(ctx, spec, logObserver{ctx})
	if err != nil {
		diags.AddError("shipkit_image: build and push "+spec.repo.String(), err.Error())
		return
	}
	m.Digest = types.StringValue(digest.DigestStr())
	m.Image = types.StringValue(digest.String())
	m.ID = m.Image
	if m.SourceHash.IsUnknown() { // source_dir was unknown at plan time
		platforms, _ := stringList(ctx, m.Platforms)
		p, _ := v1.ParsePlatform(platforms[0])
		h, err := sourceHash(ctx, spec.dir, spec.pkg, p.OS, p.Architecture)
		if err != nil {
			diags.AddAttributeError(path.Root("source_dir"), "Cannot read the Go source", err.Error())
			return
		}
		m.SourceHash = types.StringValue(h)
	}
	m.SignedBy = types.StringNull()
	if spec.sign != nil {
		r.sign(ctx, m, priv, diags)
	}
}

// sign signs the image of m's digest with m's key.
func (r *ImageResource) sign(ctx context.Context, m *imageModel, priv privateSetter, diags *diag.Diagnostics) {
	spec, d := r.spec(ctx, m)
	if diags.Append(d...); diags.HasError() {
		return
	}
	digest, err := name.NewDigest(m.Image.ValueString(), r.c.nameOptions()...)
	if err != nil {
		diags.AddAttributeError(path.Root("image"), "Invalid image digest", err.Error())
		return
	}
	if spec.sign == nil {
		m.SignedBy = types.StringNull()
		return
	}
	key, err := r.c.signImage(ctx, digest, *spec.sign)
	if err != nil {
		diags.AddAttributeError(path.Root("sign"), "shipkit_image: sign "+digest.String(), err.Error())
		return
	}
	m.SignedBy = types.StringValue(key.DisplayName())
	diags.Append(priv.SetKey(ctx, privateKeyPublicKey, publicKeyJSON(key))...)
}

// Read checks that the registry still has the digest (else the image is gone from
// the state and the plan builds it again) and that its signature still verifies (else
// signed_by is emptied and the plan signs it again).
func (r *ImageResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m imageModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	digest, err := name.NewDigest(m.Image.ValueString(), r.c.nameOptions()...)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("image"), "Invalid image digest in the state", err.Error())
		return
	}
	ok, err := r.c.imageExists(ctx, digest)
	if err != nil {
		resp.Diagnostics.AddError("shipkit_image: refresh", err.Error())
		return
	}
	if !ok {
		resp.State.RemoveResource(ctx)
		return
	}
	if m.SignedBy.ValueString() != "" {
		raw, d := req.Private.GetKey(ctx, privateKeyPublicKey)
		resp.Diagnostics.Append(d...)
		if key, ok := parsePublicKeyJSON(raw); ok {
			signed, err := r.c.stillSigned(ctx, digest, key)
			if err != nil {
				resp.Diagnostics.AddError("shipkit_image: verify the signature of "+digest.String(), err.Error())
				return
			}
			if !signed {
				m.SignedBy = types.StringValue("")
			}
		}
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// Delete forgets the image. Registries address images by content: another build,
// tag or release may use the same digest, so nothing is deleted from the registry.
func (r *ImageResource) Delete(context.Context, resource.DeleteRequest, *resource.DeleteResponse) {}

// ImportState adopts an image by digest: repository@sha256:HEX. The next plan
// rebuilds it from the configured source; builds being reproducible, the same source
// gives the same digest.
func (r *ImageResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	var opts []name.Option
	if r.c != nil {
		opts = r.c.nameOptions()
	}
	d, err := name.NewDigest(req.ID, opts...)
	if err != nil {
		resp.Diagnostics.AddError("shipkit_image: import",
			fmt.Sprintf("import ID %q: want an image by digest, repository@sha256:HEX: %v", req.ID, err))
		return
	}
	m := imageModel{
		ID:         types.StringValue(d.String()),
		Repository: types.StringValue(d.Context().String()),
		Digest:     types.StringValue(d.DigestStr()),
		Image:      types.StringValue(d.String()),
		Package:    types.StringValue("."),
		Platforms:  types.ListNull(types.StringType),
		Sign:       types.ObjectNull(signAttrTypes),
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// spec reads what to build from m.
func (r *ImageResource) spec(ctx context.Context, m *imageModel) (imageSpec, diag.Diagnostics) {
	var diags diag.Diagnostics
	repo, err := name.NewRepository(m.Repository.ValueString(), r.c.nameOptions()...)
	if err != nil {
		diags.AddAttributeError(path.Root("repository"), "Invalid repository", err.Error())
		return imageSpec{}, diags
	}
	platforms, d := stringList(ctx, m.Platforms)
	if diags.Append(d...); diags.HasError() {
		return imageSpec{}, diags
	}
	s := imageSpec{
		dir: m.SourceDir.ValueString(), pkg: m.Package.ValueString(), repo: repo, platforms: platforms,
		base: m.Base.ValueString(), ldflags: m.Ldflags.ValueString(),
	}
	if !m.Sign.IsNull() {
		var sm signModel
		if diags.Append(m.Sign.As(ctx, &sm, basetypes.ObjectAsOptions{})...); diags.HasError() {
			return imageSpec{}, diags
		}
		s.sign = &signSpec{keyFile: sm.KeyFile.ValueString(), keyEnv: sm.KeyEnv.ValueString(), passwordEnv: sm.PasswordEnv.ValueString()}
		if s.sign.passwordEnv == "" {
			s.sign.passwordEnv = DefaultPasswordEnv
		}
	}
	return s, diags
}

// publicKeyJSON and parsePublicKeyJSON keep a public key in private state, which
// must be JSON.
func publicKeyJSON(k sign.TrustedKey) []byte {
	b, _ := json.Marshal(string(k.PEM)) // a string always encodes
	return b
}

func parsePublicKeyJSON(b []byte) (sign.TrustedKey, bool) {
	var pem string
	if err := json.Unmarshal(b, &pem); err != nil || pem == "" {
		return sign.TrustedKey{}, false
	}
	return sign.TrustedKey{PEM: []byte(pem)}, true
}

// known reports whether a configured string is set and known.
func known(s types.String) bool { return !s.IsNull() && !s.IsUnknown() }

// stringList reads a known list of strings; an empty or null list is an error.
func stringList(ctx context.Context, l types.List) ([]string, diag.Diagnostics) {
	var out []string
	diags := l.ElementsAs(ctx, &out, false)
	if !diags.HasError() && len(out) == 0 {
		diags.AddError("Empty list", "want at least one platform")
	}
	return out, diags
}
