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
