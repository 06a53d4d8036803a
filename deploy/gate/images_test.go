package gate_test

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/scan/policy"
	"github.com/shipkit/shipkit/sign"
)

func parse(t *testing.T, manifest string) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(manifest), &m))
	return &unstructured.Unstructured{Object: m}
}

// reasons prints each reason as "object container code message".
func reasons(d *deploy.Decision) []string {
	var out []string
	for _, r := range d.Reasons {
		out = append(out, strings.TrimSpace(r.Object.String()+" "+r.Container)+" "+string(r.Code)+" "+r.Message)
	}
	return out
}

// TestImagesBeyondContainers: image volumes and the containers of workload custom
// resources are verified like containers; an image in a kind the gate cannot
// interpret is a reason, not a silent pass.
func TestImagesBeyondContainers(t *testing.T) {
	signed := "registry.example/app@" + digestA
	for _, tt := range []struct {
		name     string
		manifest string
		want     []string
		verified []string // digests the verifier was asked about
	}{
		{
			name: "unsigned image by tag mounted as an image volume into a signed pod",
			manifest: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"shop"},"spec":{
			  "containers":[{"name":"app","image":"` + signed + `"}],
			  "volumes":[{"name":"tools","image":{"reference":"registry.example/tools:v1"}}]}}`,
			want:     []string{`Pod/shop/p not-pinned spec.volumes[name=tools].image.reference: not pinned by digest (tag "v1"): pin it to the digest the build published`},
			verified: []string{signed},
		},
		{
			name: "unsigned pinned image volume",
			manifest: `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"shop"},"spec":{"template":{"spec":{
			  "containers":[{"name":"app","image":"` + signed + `"}],
			  "volumes":[{"name":"tools","image":{"reference":"registry.example/tools@` + digestB + `"}}]}}}}`,
			want:     []string{"Deployment/shop/d unsigned spec.template.spec.volumes[name=tools].image.reference: no signatures"},
			verified: []string{signed, "registry.example/tools@" + digestB},
		},
		{
			name: "Tekton Task step with an unpinned image",
			manifest: `{"apiVersion":"tekton.dev/v1","kind":"Task","metadata":{"name":"build","namespace":"ci"},"spec":{
			  "steps":[{"name":"test","image":"` + signed + `"},{"name":"push","image":"gcr.io/kaniko-project/executor:latest"}]}}`,
			want:     []string{`Task.tekton.dev/ci/build push not-pinned not pinned by digest (tag "latest"): pin it to the digest the build published`},
			verified: []string{signed},
		},
		{
			name: "Argo Workflow containers are verified",
			manifest: `{"apiVersion":"argoproj.io/v1alpha1","kind":"Workflow","metadata":{"name":"wf","namespace":"ci"},"spec":{"templates":[
			  {"name":"build","container":{"image":"` + signed + `"},"sidecars":[{"name":"db","image":"registry.example/db@` + digestB + `"}]}]}}`,
			want:     []string{"Workflow.argoproj.io/ci/wf db unsigned no signatures"},
			verified: []string{signed, "registry.example/db@" + digestB},
		},
		{
			name: "unknown kind with an image deep inside",
			manifest: `{"apiVersion":"example.com/v1","kind":"Mystery","metadata":{"name":"m","namespace":"x"},"spec":{
			  "runner":{"settings":[{"name":"a","image":"evil:latest"}]}}}`,
			want: []string{`Mystery.example.com/x/m unrecognised-image spec.runner.settings[name=a].image: looks like an image where the gate cannot tell what runs it ` +
				`(not a pod spec's container or image volume, nor a container of a workload resource deploy.Walk knows), so it cannot be verified`},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := &fakeVerifier{verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: verified()}}
			g, err := gate.New(gate.WithVerifier(v))
			require.NoError(t, err)
			d, err := g.Check(t.Context(), []*unstructured.Unstructured{parse(t, tt.manifest)})
			require.NoError(t, err)
			assert.Equal(t, tt.want, reasons(d))
			assert.False(t, d.Allowed())
			var asked []string
			for k := range v.calls {
				asked = append(asked, k)
			}
			assert.ElementsMatch(t, tt.verified, asked)
		})
	}
}

// TestRolloutLikeDeployment: the same privileged hostPID template is denied as a
// Deployment and as an Argo Rollout, for the same reasons.
func TestRolloutLikeDeployment(t *testing.T) {
	checker, err := policy.New(policy.WithLevel(policy.Baseline))
	require.NoError(t, err)
	g, err := gate.New(gate.WithManifestPolicy(checker))
	require.NoError(t, err)
	template := `
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec:
      hostPID: true
      containers:
      - {name: agent, image: "registry.example/agent@` + digestA + `", securityContext: {privileged: true}}
`
	got := map[string][]string{}
	for _, head := range []string{"apiVersion: apps/v1\nkind: Deployment\n", "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\n"} {
		o := parse(t, head+"metadata: {name: agent, namespace: ops}\nspec:"+template)
		d, err := g.Check(t.Context(), []*unstructured.Unstructured{o})
		require.NoError(t, err)
		var rules []string
		for _, r := range d.Reasons {
			assert.Equal(t, deploy.RefOf(o), r.Object)
			if strings.HasPrefix(r.Rule, "pss/") {
				rules = append(rules, r.Rule)
			}
		}
		got[o.GetKind()] = rules
	}
	assert.Equal(t, []string{"pss/hostNamespaces", "pss/privileged"}, got["Deployment"])
	assert.Equal(t, got["Deployment"], got["Rollout"])
}

// TestWalkerBypassesDenied: the objects a review got through the gate (issue 13
// item 3, second round) are denied; a pinned Tekton bundle or Crossplane package
// is verified like a container's image.
func TestWalkerBypassesDenied(t *testing.T) {
	signed := "registry.example/app@" + digestA
	notPinned := func(path, tag string) string {
		return path + `: not pinned by digest (tag "` + tag + `"): pin it to the digest the build published`
	}
	for _, tt := range []struct {
		name     string
		manifest string
		want     []string // reasons but for the object's name
		verified []string
	}{
		{
			name: "Tekton TaskRun from a bundle by the bundles resolver",
			manifest: `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr","namespace":"ci"},"spec":{"taskRef":{"resolver":"bundles",
			  "params":[{"name":"bundle","value":"docker.io/evil/task-bundle:latest"},{"name":"name","value":"t"},{"name":"kind","value":"task"}]}}}`,
			want: []string{"not-pinned " + notPinned("spec.taskRef.params[name=bundle].value", "latest")},
		},
		{
			name:     "Tekton v1beta1 PipelineRun from a bundle",
			manifest: `{"apiVersion":"tekton.dev/v1beta1","kind":"PipelineRun","metadata":{"name":"pr","namespace":"ci"},"spec":{"pipelineRef":{"name":"p","bundle":"docker.io/evil/p:latest"}}}`,
			want:     []string{"not-pinned " + notPinned("spec.pipelineRef.bundle", "latest")},
		},
		{
			name:     "Tekton v1beta1 TaskRun from a bundle",
			manifest: `{"apiVersion":"tekton.dev/v1beta1","kind":"TaskRun","metadata":{"name":"tr","namespace":"ci"},"spec":{"taskRef":{"name":"t","bundle":"docker.io/evil/t:latest"}}}`,
			want:     []string{"not-pinned " + notPinned("spec.taskRef.bundle", "latest")},
		},
		{
			name: "Tekton Pipeline task from git",
			manifest: `{"apiVersion":"tekton.dev/v1","kind":"Pipeline","metadata":{"name":"p","namespace":"ci"},"spec":{"tasks":[{"name":"t",
			  "taskRef":{"resolver":"git","params":[{"name":"url","value":"https://example.com/t.git"}]}}]}}`,
			want: []string{"unrecognised-image spec.tasks[name=t].taskRef.resolver: the git resolver fetches a definition that can run any image, which cannot be checked"},
		},
		{
			name:     "Crossplane Provider by tag",
			manifest: `{"apiVersion":"pkg.crossplane.io/v1","kind":"Provider","metadata":{"name":"aws"},"spec":{"package":"xpkg.upbound.io/evil/provider-aws:latest"}}`,
			want:     []string{"not-pinned " + notPinned("spec.package", "latest")},
		},
		{
			name:     "Crossplane Function pinned but unsigned",
			manifest: `{"apiVersion":"pkg.crossplane.io/v1","kind":"Function","metadata":{"name":"fn"},"spec":{"package":"xpkg.upbound.io/evil/fn@` + digestB + `"}}`,
			want:     []string{"unsigned spec.package: no signatures"},
			verified: []string{"xpkg.upbound.io/evil/fn@" + digestB},
		},
		{
			name:     "custom resource with an image list",
			manifest: `{"apiVersion":"example.com/v1","kind":"Runner","metadata":{"name":"r","namespace":"x"},"spec":{"images":["docker.io/evil/a:latest"],"imageRef":"docker.io/evil/b:latest"}}`,
			want: []string{
				"unrecognised-image spec.imageRef: looks like an image where the gate cannot tell what runs it (not a pod spec's container or image volume, nor a container of a workload resource deploy.Walk knows), so it cannot be verified",
				"unrecognised-image spec.images[0]: looks like an image where the gate cannot tell what runs it (not a pod spec's container or image volume, nor a container of a workload resource deploy.Walk knows), so it cannot be verified",
			},
		},
		{
			name: "Argo resource template creating a Pod",
			manifest: `{"apiVersion":"argoproj.io/v1alpha1","kind":"Workflow","metadata":{"name":"wf","namespace":"ci"},"spec":{"templates":[{"name":"mk",
			  "resource":{"action":"create","manifest":"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: main, image: docker.io/evil/pod:latest}]}\n"}}]}}`,
			want: []string{"main not-pinned not pinned by digest (tag \"latest\"): pin it to the digest the build published"},
		},
		{
			name: "Argo resource template with workflow parameters",
			manifest: `{"apiVersion":"argoproj.io/v1alpha1","kind":"Workflow","metadata":{"name":"wf","namespace":"ci"},"spec":{"templates":[{"name":"mk",
			  "resource":{"action":"create","manifest":"{{inputs.parameters.manifest}}"}}]}}`,
			want: []string{"unrecognised-image spec.templates[name=mk].resource.manifest: the manifest has workflow parameters ({{...}}), which can change what it creates when the workflow runs, so it cannot be checked"},
		},
		{
			name: "Pod with Istio's proxy image in its own annotations",
			manifest: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"shop","annotations":{"sidecar.istio.io/proxyImage":"docker.io/evil/proxy:latest"}},
			  "spec":{"containers":[{"name":"app","image":"` + signed + `"}]}}`,
			want: []string{"unrecognised-image metadata.annotations.sidecar.istio.io/proxyImage: looks like an image where the gate cannot tell what runs it " +
				"(not a pod spec's container or image volume, nor a container of a workload resource deploy.Walk knows), so it cannot be verified"},
			verified: []string{signed},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := &fakeVerifier{verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: verified()}}
			g, err := gate.New(gate.WithVerifier(v))
			require.NoError(t, err)
			o := parse(t, tt.manifest)
			d, err := g.Check(t.Context(), []*unstructured.Unstructured{o})
			require.NoError(t, err)
			var got []string
			for _, r := range d.Reasons {
				assert.Equal(t, deploy.RefOf(o), r.Object)
				got = append(got, strings.TrimSpace(r.Container+" "+string(r.Code)+" "+r.Message))
			}
			assert.Equal(t, tt.want, got)
			assert.False(t, d.Allowed())
			var asked []string
			for k := range v.calls {
				asked = append(asked, k)
			}
			assert.ElementsMatch(t, tt.verified, asked)
		})
	}

	// Signed and pinned, a bundle and a package are allowed: they were verified.
	v := &fakeVerifier{verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: verified()}}
	g, err := gate.New(gate.WithVerifier(v))
	require.NoError(t, err)
	d, err := g.Check(t.Context(), []*unstructured.Unstructured{
		parse(t, `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr","namespace":"ci"},"spec":{"taskRef":{"resolver":"bundles","params":[{"name":"bundle","value":"`+signed+`"}]}}}`),
		parse(t, `{"apiVersion":"pkg.crossplane.io/v1","kind":"Provider","metadata":{"name":"aws"},"spec":{"package":"`+signed+`"}}`),
	})
	require.NoError(t, err)
	assert.True(t, d.Allowed(), "%v", reasons(d))
	assert.Equal(t, 1, v.calls[signed])
}
