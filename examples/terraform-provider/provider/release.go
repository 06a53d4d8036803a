package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
)

// ReleaseResource is shipkit_release: rendered objects, gated, applied server-side
// as one ApplySet.
type ReleaseResource struct {
	c *clients
}

var (
	_ resource.ResourceWithConfigure      = (*ReleaseResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*ReleaseResource)(nil)
	_ resource.ResourceWithImportState    = (*ReleaseResource)(nil)
	_ resource.ResourceWithValidateConfig = (*ReleaseResource)(nil)
)

// NewReleaseResource returns the shipkit_release resource.
func NewReleaseResource() resource.Resource { return &ReleaseResource{} }

// releaseModel is shipkit_release's configuration and state.
type releaseModel struct {
	ID             types.String `tfsdk:"id"`
	Name           types.String `tfsdk:"name"`
	Namespace      types.String `tfsdk:"namespace"`
	KustomizeDir   types.String `tfsdk:"kustomize_dir"`
	Files          types.List   `tfsdk:"files"`
	Images         types.List   `tfsdk:"images"`
	Revision       types.String `tfsdk:"revision"`
	Wait           types.String `tfsdk:"wait"`
	ForceConflicts types.Bool   `tfsdk:"force_conflicts"`
	Gate           types.Object `tfsdk:"gate"`
	ApplySetID     types.String `tfsdk:"applyset_id"`
	Objects        types.Map    `tfsdk:"objects"`
	SecretObjects  types.Map    `tfsdk:"secret_objects"`
}

// Metadata names the resource shipkit_release.
func (r *ReleaseResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_release"
}

// Schema describes shipkit_release.
func (r *ReleaseResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	resp.Schema = schema.Schema{
		Description: "Kubernetes objects rendered from a kustomize directory or YAML files with their images pinned " +
			"by digest, checked by the deploy gate when one is configured, and applied server-side as one " +
			"ApplySet (KEP-3659): an object dropped from the release is pruned, destroying the release prunes " +
			"everything it applied. The plan shows each object as YAML; after a refresh, fields changed in the " +
			"cluster show up as a diff. Import with namespace/name.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:      true,
				Description:   "namespace/name.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				Required: true, PlanModifiers: replace,
				Description: "The release's name. Its ApplySet parent is the ConfigMap shipkit-release-NAME.",
			},
			"namespace": schema.StringAttribute{
				Required: true, PlanModifiers: replace,
				Description: "The namespace of the ApplySet parent, and of every namespaced object that names none.",
			},
			"kustomize_dir": schema.StringAttribute{
				Optional:    true,
				Description: "A kustomization directory to render (no plugins, no remote bases). Set this or files.",
			},
			"files": schema.ListAttribute{
				ElementType: types.StringType, Optional: true,
				Description: "YAML or JSON files (a directory stands for its *.yaml, *.yml and *.json files).",
			},
			"images": schema.ListAttribute{
				ElementType: types.StringType, Optional: true,
				Description: "Images by digest (repository@sha256:HEX, e.g. shipkit_image.app.image): every container " +
					"whose image names the same repository is pinned to it.",
			},
			"revision": schema.StringAttribute{
				Optional:    true,
				Description: "Recorded on every object as the deploy.shipkit.dev/revision annotation.",
			},
			"wait": schema.StringAttribute{
				Optional: true,
				Description: "Wait up to this long (a Go duration, e.g. \"5m\") for every object to become healthy " +
					"before pruning; default: no wait.",
			},
			"force_conflicts": schema.BoolAttribute{
				Optional: true,
				Description: "Take back fields another field manager changed (kubectl scale, edit) instead of " +
					"failing the apply. The plan warns about such fields either way.",
			},
			"gate":        gateSchema(),
			"applyset_id": schema.StringAttribute{Computed: true, PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}, Description: "The ApplySet's id, the value of the applyset.kubernetes.io/part-of label on every object."},
			"objects": schema.MapAttribute{
				ElementType: types.StringType, Computed: true,
				Description: "The objects, as YAML, by Kind/namespace/name. In the state: as the cluster has them " +
					"(fields changed in the cluster since the last apply are shown with their live values); in a " +
					"plan: as the apply will make them. Secrets are in secret_objects instead.",
			},
			"secret_objects": schema.MapAttribute{
				ElementType: types.StringType, Computed: true, Sensitive: true,
				Description: "The release's Secrets, like objects but sensitive: a plan says that they change, " +
					"not how, so their data never reaches a plan's output or a log.",
			},
		},
	}
}

// Configure takes the provider's clients.
func (r *ReleaseResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	c, err := clientsFrom(req.ProviderData)
	if err != nil {
		resp.Diagnostics.AddError("shipkit_release: configure", err.Error())
		return
	}
	r.c = c
}

// ValidateConfig checks the settings that can be checked without a cluster.
func (r *ReleaseResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m releaseModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !m.KustomizeDir.IsUnknown() && !m.Files.IsUnknown() && m.KustomizeDir.IsNull() == m.Files.IsNull() {
		resp.Diagnostics.AddAttributeError(path.Root("kustomize_dir"), "Invalid release source",
			"Set exactly one of kustomize_dir and files.")
	}
	if known(m.Name) {
		for _, msg := range validation.IsDNS1123Subdomain(applySetPrefix + m.Name.ValueString()) {
			resp.Diagnostics.AddAttributeError(path.Root("name"), "Invalid release name", msg)
		}
	}
	if known(m.Wait) {
		if d, err := time.ParseDuration(m.Wait.ValueString()); err != nil || d < 0 {
			resp.Diagnostics.AddAttributeError(path.Root("wait"), "Invalid wait",
				fmt.Sprintf("%q: want a Go duration such as \"90s\" or \"5m\"", m.Wait.ValueString()))
		}
	}
	if !m.Images.IsNull() && !m.Images.IsUnknown() {
		for i, v := range m.Images.Elements() {
			s, ok := v.(types.String)
			if !ok || s.IsUnknown() || s.IsNull() {
				continue
			}
			if _, err := name.NewDigest(s.ValueString()); err != nil {
				resp.Diagnostics.AddAttributeError(path.Root("images").AtListIndex(i), "Invalid image",
					fmt.Sprintf("%q: want an image by digest, repository@sha256:HEX: %v", s.ValueString(), err))
			}
		}
	}
	resp.Diagnostics.Append(validateGate(ctx, m.Gate)...)
}

// ModifyPlan renders the objects and asks the cluster, with a server-side dry run,
// what an apply would change: objects it would leave alone keep their state, so the
// plan shows only real changes, and fields another manager owns are warned about.
func (r *ReleaseResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.c == nil {
		return
	}
	var plan, state releaseModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	creating := req.State.Raw.IsNull()
	if !creating {
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	if known(plan.Namespace) && known(plan.Name) {
		plan.ID = types.StringValue(plan.Namespace.ValueString() + "/" + plan.Name.ValueString())
		plan.ApplySetID = types.StringValue((&releaseSpec{name: plan.Name.ValueString(), namespace: plan.Namespace.ValueString()}).applySet().ID())
	}
	plan.Objects, plan.SecretObjects = types.MapUnknown(types.StringType), types.MapUnknown(types.StringType)
	spec, ok, diags := r.spec(ctx, &plan)
	resp.Diagnostics.Append(diags...)
	if diags.HasError() || !ok {
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return // known only after apply
	}
	objs, err := spec.render(ctx)
	if err != nil {
		resp.Diagnostics.AddError("shipkit_release: render", err.Error())
		return
	}
	rendered, err := encodeObjects(objs)
	if err != nil {
		resp.Diagnostics.AddError("shipkit_release: render", err.Error())
		return
	}
	// The gate judges the registry as it is now, and other resources of the same
	// apply may still change it (sign the image): at plan time a denial is a warning;
	// the apply checks again and refuses.
	for _, d := range r.checkGate(ctx, plan.Gate, objs) {
		resp.Diagnostics.AddWarning(d.Summary()+" (as the registry is now; the apply checks again)", d.Detail())
	}
	planned := rendered
	if cs, ok := r.dryRun(ctx, spec, objs, creating, &resp.Diagnostics); ok {
		var prior map[string]string
		if !creating {
			prior, _ = state.objects(ctx, &resp.Diagnostics)
		}
		planned = plannedObjects(rendered, prior, cs, spec.namespace)
		warnAboutChanges(cs, prior, spec, &resp.Diagnostics)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	plan.setObjects(ctx, planned, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

// dryRun plans the objects against the cluster. It reports false, with a warning,
// when the cluster cannot be asked yet: its settings are unknown, or the namespace a
// new release deploys to does not exist yet (another resource may create it).
func (r *ReleaseResource) dryRun(ctx context.Context, spec releaseSpec, objs []*unstructured.Unstructured, creating bool, diags *diag.Diagnostics) (*deploy.ChangeSet, bool) {
	mgr, err := r.c.manager(ctx, spec)
	if errors.Is(err, errKubeUnknown) {
		return nil, false
	}
	if err != nil {
		diags.AddError("shipkit_release: connect to the cluster", err.Error())
		return nil, false
	}
	cs, err := mgr.Plan(ctx, objs)
	if err != nil {
		if creating && apierrors.IsNotFound(err) {
			diags.AddWarning("shipkit_release: cannot dry-run the release yet",
				"The plan shows the rendered objects without asking the cluster: "+err.Error())
			return nil, false
		}
		diags.AddError("shipkit_release: plan (server-side dry run)", err.Error())
		return nil, false
	}
	tflog.Info(ctx, "shipkit release plan", map[string]any{"release": spec.namespace + "/" + spec.name, "changes": cs.String()})
	return cs, true
}

// plannedObjects are the rendered objects, except that an object the dry run leaves
// unchanged keeps its prior text (a cosmetic difference such as "1000m" for "1" is
// no change).
func plannedObjects(rendered, prior map[string]string, cs *deploy.ChangeSet, namespace string) map[string]string {
	out := make(map[string]string, len(rendered))
	for k, v := range rendered {
		out[k] = v
	}
	for _, c := range cs.Changes {
		if c.Action != deploy.Unchanged {
			continue
		}
		k, ok := keyOf(out, c.Object, namespace)
		if p, had := prior[k]; ok && had {
			out[k] = p
		}
	}
	return out
}

// warnAboutChanges warns about what the objects map cannot show: fields owned by
// another manager (the apply fails on them without force_conflicts) and objects of
// the ApplySet that the release never had, which the apply prunes.
func warnAboutChanges(cs *deploy.ChangeSet, prior map[string]string, spec releaseSpec, diags *diag.Diagnostics) {
	for _, c := range cs.Changes {
		if len(c.Drift) > 0 {
			fields := make([]string, len(c.Drift))
			for i, d := range c.Drift {
				fields[i] = d.String()
			}
			what := "The apply takes them back (force_conflicts = true)."
			if !spec.force {
				what = "The apply will fail on them unless force_conflicts = true."
			}
			diags.AddWarning("shipkit_release: "+c.Object.String()+" has fields another manager changed",
				strings.Join(fields, "\n")+"\n"+what)
		}
		if _, had := keyOf(prior, c.Object, spec.namespace); c.Action == deploy.Pruned && !had {
			diags.AddWarning("shipkit_release: the apply prunes "+c.Object.String(),
				"It carries the label of this release's ApplySet but is not one of its objects.")
		}
	}
}

// Create applies the release.
func (r *ReleaseResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan releaseModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.apply(ctx, &plan, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return // nothing is recorded: the next apply adopts what this one made, by its ApplySet
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// Update applies the release again; objects it no longer has are pruned.
func (r *ReleaseResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan releaseModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.apply(ctx, &plan, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return // the prior state stays; the next refresh shows what changed
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// apply applies the planned objects (rendering them now when the plan could not),
// after the gate, and fills in the computed attributes.
func (r *ReleaseResource) apply(ctx context.Context, m *releaseModel, diags *diag.Diagnostics) {
	spec, ok, d := r.spec(ctx, m)
	if diags.Append(d...); diags.HasError() {
		return
	}
	if !ok {
		diags.AddError("shipkit_release: apply", "values are still unknown at apply time: a bug in the shipkit provider")
		return
	}
	var (
		objs    []*unstructured.Unstructured
		encoded map[string]string
		err     error
	)
	planned, known := m.objects(ctx, diags)
	switch {
	case diags.HasError():
		return
	case known:
		// What the plan showed is what is applied, even if the files changed since.
		encoded = planned
		objs, err = decodeObjects(encoded)
	default:
		if objs, err = spec.render(ctx); err == nil {
			encoded, err = encodeObjects(objs)
		}
	}
	if err != nil {
		diags.AddError("shipkit_release: render", err.Error())
		return
	}
	if diags.Append(r.checkGate(ctx, m.Gate, objs)...); diags.HasError() {
		return
	}
	mgr, err := r.c.manager(ctx, spec)
	if err != nil {
		diags.AddError("shipkit_release: connect to the cluster", err.Error())
		return
	}
	cs, err := mgr.Apply(ctx, objs)
	if err != nil {
		done := ""
		if cs != nil && len(cs.Changes) > 0 {
			done = "\n\nDone before the error:\n" + cs.String()
		}
		var ce *apply.ConflictError
		if errors.As(err, &ce) {
			done = "\n\nSet force_conflicts = true to take the fields back." + done
		}
		diags.AddError("shipkit_release: apply "+spec.namespace+"/"+spec.name, err.Error()+done)
		return
	}
	tflog.Info(ctx, "shipkit release applied", map[string]any{"release": spec.namespace + "/" + spec.name, "changes": cs.String()})
	m.ID = types.StringValue(spec.namespace + "/" + spec.name)
	m.ApplySetID = types.StringValue(spec.applySet().ID())
	m.setObjects(ctx, encoded, diags)
}

// Read refreshes the objects from the cluster: each is dry-run applied as it was
// applied, and the fields the dry run would change take their live values, so a
// change made in the cluster shows up as a diff in the next plan. A release whose
// namespace is gone is gone.
func (r *ReleaseResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m releaseModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	spec := releaseSpec{name: m.Name.ValueString(), namespace: m.Namespace.ValueString(), force: true}
	cfg, err := r.c.restConfig()
	if err != nil {
		resp.Diagnostics.AddError("shipkit_release: connect to the cluster", err.Error())
		return
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		resp.Diagnostics.AddError("shipkit_release: connect to the cluster", err.Error())
		return
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, spec.namespace, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		resp.State.RemoveResource(ctx)
		return
	} else if err != nil {
		resp.Diagnostics.AddError("shipkit_release: refresh", fmt.Sprintf("namespace %s: %v", spec.namespace, err))
		return
	}
	// Imported, the release has no objects: nothing to compare with until the next
	// plan renders them.
	stored, _ := m.objects(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	objs, err := decodeObjects(stored)
	if err != nil {
		resp.Diagnostics.AddError("shipkit_release: refresh: objects in the state", err.Error())
		return
	}
	mgr, err := r.c.manager(ctx, spec)
	if err != nil {
		resp.Diagnostics.AddError("shipkit_release: connect to the cluster", err.Error())
		return
	}
	plan, err := mgr.Plan(ctx, objs)
	if err != nil {
		resp.Diagnostics.AddError("shipkit_release: refresh (server-side dry run)", err.Error())
		return
	}
	live, err := liveView(stored, plan, spec.namespace)
	if err != nil {
		resp.Diagnostics.AddError("shipkit_release: refresh", err.Error())
		return
	}
	m.setObjects(ctx, live, &resp.Diagnostics)
	m.ID = types.StringValue(spec.namespace + "/" + spec.name)
	m.ApplySetID = types.StringValue(spec.applySet().ID())
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// Delete prunes every object the release applied, then removes its ApplySet parent.
func (r *ReleaseResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m releaseModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	spec := releaseSpec{name: m.Name.ValueString(), namespace: m.Namespace.ValueString()}
	set := spec.applySet()
	cfg, err := r.c.restConfig()
	if err != nil {
		resp.Diagnostics.AddError("shipkit_release: connect to the cluster", err.Error())
		return
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		resp.Diagnostics.AddError("shipkit_release: connect to the cluster", err.Error())
		return
	}
	parents := kc.CoreV1().ConfigMaps(set.Namespace)
	if _, err := parents.Get(ctx, set.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		return // no inventory: nothing this release applied is left to find
	} else if err != nil {
		resp.Diagnostics.AddError("shipkit_release: destroy", fmt.Sprintf("ApplySet parent ConfigMap %s/%s: %v", set.Namespace, set.Name, err))
		return
	}
	mgr, err := r.c.manager(ctx, spec)
	if err != nil {
		resp.Diagnostics.AddError("shipkit_release: connect to the cluster", err.Error())
		return
	}
	// Applying nothing with pruning on deletes every member of the ApplySet.
	pruned, err := mgr.Apply(ctx, nil)
	if err != nil {
		resp.Diagnostics.AddError("shipkit_release: destroy: prune", err.Error())
		return
	}
	tflog.Info(ctx, "shipkit release destroyed", map[string]any{"release": spec.namespace + "/" + spec.name, "changes": pruned.String()})
	if err := parents.Delete(ctx, set.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		resp.Diagnostics.AddError("shipkit_release: destroy", fmt.Sprintf("delete ApplySet parent ConfigMap %s/%s: %v", set.Namespace, set.Name, err))
	}
}

// ImportState adopts a release by namespace/name. The next plan renders its objects
// and applies them into the same ApplySet.
func (r *ReleaseResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	ns, n, ok := strings.Cut(req.ID, "/")
	if !ok || ns == "" || n == "" {
		resp.Diagnostics.AddError("shipkit_release: import", fmt.Sprintf("import ID %q: want namespace/name", req.ID))
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("namespace"), ns)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), n)...)
}

// spec reads what to deploy from m. It reports false when a value is not known yet.
func (r *ReleaseResource) spec(ctx context.Context, m *releaseModel) (releaseSpec, bool, diag.Diagnostics) {
	var diags diag.Diagnostics
	if !known(m.Name) || !known(m.Namespace) || m.KustomizeDir.IsUnknown() || m.Files.IsUnknown() ||
		m.Images.IsUnknown() || m.Revision.IsUnknown() || m.Wait.IsUnknown() || m.ForceConflicts.IsUnknown() {
		return releaseSpec{}, false, nil
	}
	s := releaseSpec{
		name: m.Name.ValueString(), namespace: m.Namespace.ValueString(),
		kustomizeDir: m.KustomizeDir.ValueString(), revision: m.Revision.ValueString(),
		force: m.ForceConflicts.ValueBool(),
	}
	if !m.Files.IsNull() {
		if diags.Append(m.Files.ElementsAs(ctx, &s.files, false)...); diags.HasError() {
			return s, false, diags
		}
	}
	var images []types.String
	if !m.Images.IsNull() {
		if diags.Append(m.Images.ElementsAs(ctx, &images, false)...); diags.HasError() {
			return s, false, diags
		}
	}
	for i, img := range images {
		if img.IsUnknown() {
			return s, false, diags
		}
		d, err := name.NewDigest(img.ValueString(), r.c.nameOptions()...)
		if err != nil {
			diags.AddAttributeError(path.Root("images").AtListIndex(i), "Invalid image", err.Error())
			return s, false, diags
		}
		s.images = append(s.images, d)
	}
	if known(m.Wait) {
		w, err := time.ParseDuration(m.Wait.ValueString())
		if err != nil {
			diags.AddAttributeError(path.Root("wait"), "Invalid wait", err.Error())
			return s, false, diags
		}
		s.wait = w
	}
	if !gateKnown(m.Gate) {
		return s, false, diags
	}
	return s, true, diags
}

// secretKind starts the key of a Secret in the objects maps.
const secretKind = "Secret/"

// objects returns the objects and secret_objects maps as one map, and whether they
// are known. Null maps (an imported release) are empty.
func (m *releaseModel) objects(ctx context.Context, diags *diag.Diagnostics) (map[string]string, bool) {
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
		for k, o := range part {
			out[k] = o
		}
	}
	return out, true
}

// setObjects splits all into objects and secret_objects.
func (m *releaseModel) setObjects(ctx context.Context, all map[string]string, diags *diag.Diagnostics) {
	plain, secret := map[string]string{}, map[string]string{}
	for k, v := range all {
		if strings.HasPrefix(k, secretKind) {
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
