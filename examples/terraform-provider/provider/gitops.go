package provider

import (
	"context"
	"errors"
	"maps"
	"os"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/terraform-plugin-log/tflog"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gitops"
)

// GitOpsReleaseResource is shipkit_gitops_release: rendered objects, gated, committed
// to a directory of a Git repository for Argo CD or Flux to apply.
type GitOpsReleaseResource struct {
	c *clients
}

var (
	_ resource.ResourceWithConfigure      = (*GitOpsReleaseResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*GitOpsReleaseResource)(nil)
	_ resource.ResourceWithValidateConfig = (*GitOpsReleaseResource)(nil)
)

// NewGitOpsReleaseResource returns the shipkit_gitops_release resource.
func NewGitOpsReleaseResource() resource.Resource { return &GitOpsReleaseResource{} }

// gitopsModel is shipkit_gitops_release's configuration and state.
type gitopsModel struct {
	ID            types.String `tfsdk:"id"`
	RepositoryURL types.String `tfsdk:"repository_url"`
	Branch        types.String `tfsdk:"branch"`
	Path          types.String `tfsdk:"path"`
	Username      types.String `tfsdk:"username"`
	Password      types.String `tfsdk:"password"`
	SSHKey        types.String `tfsdk:"ssh_private_key"`
	SSHKnownHosts types.String `tfsdk:"ssh_known_hosts"`
	KustomizeDir  types.String `tfsdk:"kustomize_dir"`
	Files         types.List   `tfsdk:"files"`
	Images        types.List   `tfsdk:"images"`
	Revision      types.String `tfsdk:"revision"`
	Gate          types.Object `tfsdk:"gate"`
	AllowSecrets  types.Bool   `tfsdk:"allow_secrets"`
	ArgoCD        types.Object `tfsdk:"argocd"`
	Flux          types.Object `tfsdk:"flux"`
	Commit        types.String `tfsdk:"commit"`
	Objects       types.Map    `tfsdk:"objects"`
	SecretObjects types.Map    `tfsdk:"secret_objects"`
}

type argoModel struct {
	Name                 types.String `tfsdk:"name"`
	Namespace            types.String `tfsdk:"namespace"`
	Project              types.String `tfsdk:"project"`
	Server               types.String `tfsdk:"server"`
	DestinationNamespace types.String `tfsdk:"destination_namespace"`
}

type fluxModel struct {
	Name            types.String `tfsdk:"name"`
	Namespace       types.String `tfsdk:"namespace"`
	SecretName      types.String `tfsdk:"secret_name"`
	TargetNamespace types.String `tfsdk:"target_namespace"`
	Interval        types.String `tfsdk:"interval"`
}

// Metadata names the resource shipkit_gitops_release.
func (r *GitOpsReleaseResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_gitops_release"
}

// Schema describes shipkit_gitops_release.
func (r *GitOpsReleaseResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	opt := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Optional: true, Description: desc}
	}
	resp.Schema = schema.Schema{
		Description: "Kubernetes objects rendered from a kustomize directory or YAML files with their images pinned " +
			"by digest, checked by the deploy gate when one is configured, and committed to a directory of a Git " +
			"repository (one file per object, deploy/gitops) for Argo CD or Flux to apply. An unchanged release " +
			"makes no commit; the push never forces and rebases when the branch moved. The plan shows each file; " +
			"after a refresh, a change someone pushed to the directory shows up as a diff and the next apply " +
			"writes the release back. Destroying removes the directory (and the Argo CD or Flux file).",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true, Description: "repository_url#branch:path.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"repository_url": schema.StringAttribute{
				Required: true, PlanModifiers: replace,
				Description: "The repository: https://, ssh:// or user@host:path, without credentials.",
			},
			"branch": schema.StringAttribute{
				Optional: true, PlanModifiers: replace,
				Description: "The branch (default main); created when missing.",
			},
			"path": schema.StringAttribute{
				Required: true, PlanModifiers: replace,
				Description: "The directory in the repository that holds the release. It is the release's: a file " +
					"in it that is no object of the release is removed.",
			},
			"username": opt("The user name: for HTTPS (default x-access-token) or SSH (default git)."),
			"password": schema.StringAttribute{
				Optional: true, Sensitive: true,
				Description: "The HTTPS password or access token.",
			},
			"ssh_private_key": schema.StringAttribute{
				Optional: true, Sensitive: true,
				Description: "A PEM private key (unencrypted) for ssh:// or user@host:path URLs, as username (default git). " +
					"Needs ssh_known_hosts.",
			},
			"ssh_known_hosts": opt("The server's host keys, in known_hosts format (e.g. from ssh-keyscan, checked by hand): " +
				"the SSH connection is refused unless the server's key is listed."),
			"kustomize_dir": opt("A kustomization directory to render (no plugins, no remote bases). Set this or files."),
			"files": schema.ListAttribute{
				ElementType: types.StringType, Optional: true,
				Description: "YAML or JSON files (a directory stands for its *.yaml, *.yml and *.json files).",
			},
			"images": schema.ListAttribute{
				ElementType: types.StringType, Optional: true,
				Description: "Images by digest (repository@sha256:HEX): every container whose image names the same " +
					"repository is pinned to it.",
			},
			"revision": opt("Recorded on every object as the deploy.shipkit.dev/revision annotation, and in the commit message."),
			"gate":     gateSchema(),
			"allow_secrets": schema.BoolAttribute{
				Optional: true,
				Description: "Commit Secrets as they are (base64, not encrypted). Without it a Secret fails the plan: " +
					"use SealedSecrets, SOPS or ExternalSecrets instead.",
			},
			"argocd": schema.SingleNestedAttribute{
				Optional:    true,
				Description: "Also commit an Argo CD Application syncing the directory, as PATH.argocd.yaml.",
				Attributes: map[string]schema.Attribute{
					"name":                  schema.StringAttribute{Required: true, Description: "The Application's name."},
					"namespace":             opt("The Application's namespace (default argocd)."),
					"project":               opt("The Argo CD project (default default)."),
					"server":                opt("The destination API server (default https://kubernetes.default.svc)."),
					"destination_namespace": opt("The namespace of objects that name none."),
				},
			},
			"flux": schema.SingleNestedAttribute{
				Optional:    true,
				Description: "Also commit a Flux GitRepository and Kustomization applying the directory, as PATH.flux.yaml.",
				Attributes: map[string]schema.Attribute{
					"name":             schema.StringAttribute{Required: true, Description: "Their name."},
					"namespace":        opt("Their namespace (default flux-system)."),
					"secret_name":      opt("The Secret with the credentials Flux fetches with."),
					"target_namespace": opt("The namespace to apply the objects in."),
					"interval":         opt("How often Flux reconciles (default 5m)."),
				},
			},
			"commit": schema.StringAttribute{
				Computed: true, Description: "The commit that last wrote the release (unchanged when an apply changed nothing).",
			},
			"objects": schema.MapAttribute{
				ElementType: types.StringType, Computed: true,
				Description: "The directory's files, as YAML, by file name; after a refresh, as the branch has them. " +
					"Secrets are in secret_objects instead.",
			},
			"secret_objects": schema.MapAttribute{
				ElementType: types.StringType, Computed: true, Sensitive: true,
				Description: "The Secrets' files (allow_secrets), like objects but sensitive.",
			},
		},
	}
}

// Configure takes the provider's clients.
func (r *GitOpsReleaseResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	c, err := clientsFrom(req.ProviderData)
	if err != nil {
		resp.Diagnostics.AddError("shipkit_gitops_release: configure", err.Error())
		return
	}
	r.c = c
}

// ValidateConfig checks the settings that can be checked without the repository.
func (r *GitOpsReleaseResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m gitopsModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !m.KustomizeDir.IsUnknown() && !m.Files.IsUnknown() && m.KustomizeDir.IsNull() == m.Files.IsNull() {
		resp.Diagnostics.AddAttributeError(path.Root("kustomize_dir"), "Invalid release source",
			"Set exactly one of kustomize_dir and files.")
	}
	resp.Diagnostics.Append(validateGate(ctx, m.Gate)...)
	_, _, d := r.writer(ctx, &m)
	resp.Diagnostics.Append(d...)
}

// writer makes the deploy/gitops Writer of m's settings; false when one is unknown.
func (r *GitOpsReleaseResource) writer(ctx context.Context, m *gitopsModel) (*gitops.Writer, bool, diag.Diagnostics) {
	var diags diag.Diagnostics
	for _, v := range []attr.Value{m.RepositoryURL, m.Branch, m.Path, m.Username, m.Password, m.SSHKey, m.SSHKnownHosts, m.AllowSecrets} {
		if v.IsUnknown() {
			return nil, false, nil
		}
	}
	if !objectKnown(m.ArgoCD) || !objectKnown(m.Flux) {
		return nil, false, nil
	}
	var opts []gitops.Option
	if b := m.Branch.ValueString(); b != "" {
		opts = append(opts, gitops.WithBranch(b))
	}
	if k := m.SSHKey.ValueString(); k != "" {
		if m.Password.ValueString() != "" {
			diags.AddAttributeError(path.Root("ssh_private_key"), "Conflicting credentials", "Set password or ssh_private_key, not both.")
			return nil, false, diags
		}
		hostKey, err := knownHosts(m.SSHKnownHosts.ValueString())
		if err != nil {
			diags.AddAttributeError(path.Root("ssh_known_hosts"), "Invalid ssh_known_hosts", err.Error())
			return nil, false, diags
		}
		user := m.Username.ValueString()
		if user == "" {
			user = "git"
		}
		opts = append(opts, gitops.WithSSHKey(user, []byte(k), "", hostKey))
	} else if p := m.Password.ValueString(); p != "" {
		user := m.Username.ValueString()
		if user == "" {
			user = "x-access-token"
		}
		opts = append(opts, gitops.WithBasicAuth(user, p))
	} else if !m.Username.IsNull() {
		diags.AddAttributeError(path.Root("password"), "Missing password", "username is set but password is not.")
		return nil, false, diags
	}
	if m.AllowSecrets.ValueBool() {
		opts = append(opts, gitops.WithSecrets())
	}
	if !m.ArgoCD.IsNull() {
		var a argoModel
		if diags.Append(m.ArgoCD.As(ctx, &a, basetypes.ObjectAsOptions{})...); diags.HasError() {
			return nil, false, diags
		}
		opts = append(opts, gitops.WithArgoCDApplication(gitops.ArgoCDApplication{
			Name: a.Name.ValueString(), Namespace: a.Namespace.ValueString(), Project: a.Project.ValueString(),
			Server: a.Server.ValueString(), DestinationNamespace: a.DestinationNamespace.ValueString(),
		}))
	}
	if !m.Flux.IsNull() {
		var f fluxModel
		if diags.Append(m.Flux.As(ctx, &f, basetypes.ObjectAsOptions{})...); diags.HasError() {
			return nil, false, diags
		}
		opts = append(opts, gitops.WithFluxKustomization(gitops.FluxKustomization{
			Name: f.Name.ValueString(), Namespace: f.Namespace.ValueString(), SecretName: f.SecretName.ValueString(),
			TargetNamespace: f.TargetNamespace.ValueString(), Interval: f.Interval.ValueString(),
		}))
	}
	if !known(m.RepositoryURL) || !known(m.Path) {
		return nil, false, diags
	}
	w, err := gitops.New(m.RepositoryURL.ValueString(), m.Path.ValueString(), opts...)
	if err != nil {
		diags.AddError("shipkit_gitops_release: invalid settings", err.Error())
		return nil, false, diags
	}
	return w, true, diags
}

// knownHosts makes the host key check of known_hosts lines.
func knownHosts(lines string) (ssh.HostKeyCallback, error) {
	if strings.TrimSpace(lines) == "" {
		return nil, errors.New("ssh_private_key needs ssh_known_hosts: the server's host keys")
	}
	f, err := os.CreateTemp("", "shipkit-known-hosts-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(lines); err != nil {
		_ = f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return knownhosts.New(f.Name()) // read now, into memory
}

func objectKnown(o types.Object) bool {
	if o.IsUnknown() {
		return false
	}
	for _, v := range o.Attributes() {
		if v.IsUnknown() {
			return false
		}
	}
	return true
}

// spec reads what to render from m; false when a value is not known yet.
func (r *GitOpsReleaseResource) spec(ctx context.Context, m *gitopsModel) (releaseSpec, bool, diag.Diagnostics) {
	rm := releaseModel{
		Name: types.StringValue("gitops"), Namespace: types.StringValue("default"),
		KustomizeDir: m.KustomizeDir, Files: m.Files, Images: m.Images, Revision: m.Revision,
		Wait: types.StringNull(), ForceConflicts: types.BoolNull(), Gate: m.Gate,
	}
	return (&ReleaseResource{c: r.c}).spec(ctx, &rm)
}

// render renders the release and returns its objects and the directory's files.
func (r *GitOpsReleaseResource) render(ctx context.Context, m *gitopsModel) (*gitops.Writer, []*unstructured.Unstructured, map[string]string, bool, diag.Diagnostics) {
	w, ok, diags := r.writer(ctx, m)
	if !ok || diags.HasError() {
		return nil, nil, nil, false, diags
	}
	spec, ok, d := r.spec(ctx, m)
	if diags.Append(d...); !ok || diags.HasError() {
		return nil, nil, nil, false, diags
	}
	objs, err := spec.render(ctx)
	if err != nil {
		diags.AddError("shipkit_gitops_release: render", err.Error())
		return nil, nil, nil, false, diags
	}
	files, err := w.Render(objs)
	if err != nil {
		diags.AddError("shipkit_gitops_release: render", err.Error())
		return nil, nil, nil, false, diags
	}
	return w, objs, stringMap(files), true, diags
}

func stringMap(m map[string][]byte) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

// ModifyPlan renders the files: the plan shows them, and a plan that changes
// nothing keeps the commit.
func (r *GitOpsReleaseResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.c == nil {
		return
	}
	var plan, state gitopsModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	creating := req.State.Raw.IsNull()
	if !creating {
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	if known(plan.RepositoryURL) && known(plan.Path) && !plan.Branch.IsUnknown() {
		plan.ID = types.StringValue(gitopsID(&plan))
	}
	plan.Commit = types.StringUnknown()
	plan.Objects, plan.SecretObjects = types.MapUnknown(types.StringType), types.MapUnknown(types.StringType)
	_, objs, files, ok, diags := r.render(ctx, &plan)
	if resp.Diagnostics.Append(diags...); resp.Diagnostics.HasError() {
		return
	}
	if ok {
		for _, d := range (&ReleaseResource{c: r.c}).checkGate(ctx, plan.Gate, objs) {
			resp.Diagnostics.AddWarning(d.Summary()+" (as the registry is now; the apply checks again)", d.Detail())
		}
		plan.setObjects(ctx, files, &resp.Diagnostics)
	}
	if !creating && ok {
		// Nothing else changes: the commit stays, and no update is planned.
		plan.Commit = state.Commit
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		if !resp.Plan.Raw.Equal(req.State.Raw) {
			plan.Commit = types.StringUnknown()
		}
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

func gitopsID(m *gitopsModel) string {
	b := m.Branch.ValueString()
	if b == "" {
		b = "main"
	}
	return m.RepositoryURL.ValueString() + "#" + b + ":" + m.Path.ValueString()
}

// Create writes the release.
func (r *GitOpsReleaseResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan gitopsModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.write(ctx, &plan, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// Update writes the release again.
func (r *GitOpsReleaseResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan gitopsModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.write(ctx, &plan, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// write renders, gates and commits the release: what the plan showed, or an
// error when the rendered files changed since.
func (r *GitOpsReleaseResource) write(ctx context.Context, m *gitopsModel, diags *diag.Diagnostics) {
	w, objs, files, ok, d := r.render(ctx, m)
	if diags.Append(d...); diags.HasError() {
		return
	}
	if !ok {
		diags.AddError("shipkit_gitops_release: write", "values are still unknown at apply time: a bug in the shipkit provider")
		return
	}
	if planned, known := m.files(ctx, diags); known && !maps.Equal(planned, files) {
		diags.AddError("shipkit_gitops_release: write", "the rendered objects changed since the plan; nothing was written: plan again")
		return
	}
	decision := &deploy.Decision{}
	if !m.Gate.IsNull() {
		g, gd := newGate(ctx, m.Gate, r.c)
		if diags.Append(gd...); diags.HasError() {
			return
		}
		var err error
		if decision, err = g.Check(ctx, objs); err != nil {
			diags.AddError("shipkit_gitops_release: gate", err.Error())
			return
		}
		if !decision.Allowed() {
			diags.AddAttributeError(path.Root("gate"), "shipkit_gitops_release: denied by the deploy gate", decision.String())
			return
		}
	}
	res, err := w.Write(ctx, objs, decision)
	if err != nil {
		diags.AddError("shipkit_gitops_release: write "+gitopsID(m), err.Error())
		return
	}
	tflog.Info(ctx, "shipkit gitops release written", map[string]any{
		"release": gitopsID(m), "commit": res.Commit, "changed": res.Changed, "pushes": res.Attempts,
		"added": len(res.Added), "modified": len(res.Modified), "removed": len(res.Removed),
	})
	m.ID = types.StringValue(gitopsID(m))
	m.Commit = types.StringValue(res.Commit)
	m.setObjects(ctx, files, diags)
}

// Read refreshes the objects from the branch: a change pushed to the directory
// shows up as a diff. A release whose directory is gone is gone.
func (r *GitOpsReleaseResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m gitopsModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	w, ok, diags := r.writer(ctx, &m)
	if resp.Diagnostics.Append(diags...); resp.Diagnostics.HasError() || !ok {
		return
	}
	files, _, err := w.Read(ctx)
	if err != nil {
		resp.Diagnostics.AddError("shipkit_gitops_release: refresh", err.Error())
		return
	}
	if len(files) == 0 {
		resp.State.RemoveResource(ctx)
		return
	}
	m.setObjects(ctx, stringMap(files), &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// Delete removes the directory, and the Argo CD or Flux file, in one commit.
func (r *GitOpsReleaseResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m gitopsModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	w, ok, diags := r.writer(ctx, &m)
	if resp.Diagnostics.Append(diags...); resp.Diagnostics.HasError() || !ok {
		return
	}
	res, err := w.Remove(ctx)
	if err != nil {
		resp.Diagnostics.AddError("shipkit_gitops_release: destroy "+gitopsID(&m), err.Error())
		return
	}
	tflog.Info(ctx, "shipkit gitops release removed", map[string]any{"release": gitopsID(&m), "commit": res.Commit, "changed": res.Changed})
}

// secretFile reports whether a file of the directory holds a Secret (by
// deploy/gitops's names: namespace_secret_name.yaml, or secret_name.yaml). A
// file it misjudges goes to secret_objects, the safe side.
func secretFile(name string) bool {
	parts := strings.SplitN(name, "_", 3)
	return parts[0] == "secret" || (len(parts) == 3 && parts[1] == "secret")
}

// files returns objects and secret_objects as one map, and whether they are known.
func (m *gitopsModel) files(ctx context.Context, diags *diag.Diagnostics) (map[string]string, bool) {
	out := map[string]string{}
	for _, v := range []types.Map{m.Objects, m.SecretObjects} {
		if v.IsUnknown() {
			return nil, false
		}
		if v.IsNull() {
			continue
		}
		var part map[string]string
		diags.Append(v.ElementsAs(ctx, &part, false)...)
		maps.Copy(out, part)
	}
	return out, true
}

// setObjects splits the files into objects and secret_objects.
func (m *gitopsModel) setObjects(ctx context.Context, all map[string]string, diags *diag.Diagnostics) {
	plain, secret := map[string]string{}, map[string]string{}
	for k, v := range all {
		if secretFile(k) {
			secret[k] = v
		} else {
			plain[k] = v
		}
	}
	var d diag.Diagnostics
	m.Objects, d = types.MapValueFrom(ctx, types.StringType, plain)
	diags.Append(d...)
	m.SecretObjects, d = types.MapValueFrom(ctx, types.StringType, secret)
	diags.Append(d...)
}
