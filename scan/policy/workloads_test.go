package policy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/scan/policy"
)

// hostPIDTemplate is a privileged pod template that shares the host's PID namespace.
const hostPIDTemplate = `
  template:
    metadata: {labels: {app: x}}
    spec:
      hostPID: true
      containers:
      - name: agent
        image: registry.example/agent@sha256:0000000000000000000000000000000000000000000000000000000000000000
        securityContext: {privileged: true}
`

// TestSameTemplateAnyWorkload: the same privileged hostPID template is refused as a
// Deployment and as an Argo Rollout, with the same rules at the same paths.
func TestSameTemplateAnyWorkload(t *testing.T) {
	c, err := policy.New(policy.WithLevel(policy.Baseline))
	require.NoError(t, err)
	got := map[string][]string{}
	for _, head := range []string{
		"apiVersion: apps/v1\nkind: Deployment\n",
		"apiVersion: argoproj.io/v1alpha1\nkind: Rollout\n",
	} {
		objs := decode(t, head+"metadata: {name: agent, namespace: ops}\nspec:\n  selector: {matchLabels: {app: x}}"+hostPIDTemplate)
		res, err := c.Check(t.Context(), objs)
		require.NoError(t, err)
		var rules []string
		for _, v := range res.Violations {
			assert.Equal(t, deploy.RefOf(objs[0]), v.Object)
			if strings.HasPrefix(v.Rule, "pss/") {
				rules = append(rules, v.Rule+" "+v.Path)
			}
		}
		got[objs[0].GetKind()] = rules
	}
	want := []string{
		"pss/hostNamespaces spec.template.spec.hostPID",
		"pss/privileged spec.template.spec.containers[name=agent].securityContext.privileged",
	}
	assert.ElementsMatch(t, want, got["Deployment"])
	assert.ElementsMatch(t, want, got["Rollout"], "a Rollout's template is checked like a Deployment's")
}

// TestImageVolumes: Pod Security "restricted" allows image volumes, so the
// hardening rules catch an unpinned or latest volume image.
func TestImageVolumes(t *testing.T) {
	pod := func(ref string) string {
		return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"a"},"spec":{
		  "securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},
		  "containers":[{"name":"c","image":"registry.example/app@sha256:` + strings.Repeat("0", 64) + `",
		    "securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}],
		  "volumes":[{"name":"tools","image":{"reference":"` + ref + `"}}]}}`
	}
	c, err := policy.New(policy.WithLevel(policy.Restricted))
	require.NoError(t, err)
	for _, tt := range []struct {
		ref  string
		want []string
	}{
		{"registry.example/tools:latest", []string{"image-digest", "image-latest"}},
		{"registry.example/tools", []string{"image-digest", "image-latest"}},
		{"registry.example/tools:v2", []string{"image-digest"}},
		{"registry.example/tools@sha256:" + strings.Repeat("1", 64), nil},
	} {
		t.Run(tt.ref, func(t *testing.T) {
			res, err := c.Check(t.Context(), decode(t, pod(tt.ref)))
			require.NoError(t, err)
			var got []string
			for _, v := range res.Violations {
				assert.False(t, strings.HasPrefix(v.Rule, "pss/"), "restricted allows image volumes: %s", v)
				if strings.HasPrefix(v.Rule, "image-") {
					assert.Equal(t, "spec.volumes[name=tools].image.reference", v.Path)
					assert.Contains(t, v.Message, tt.ref)
					got = append(got, v.Rule)
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestWorkflowsAndPipelines: Argo Workflows templates and Tekton tasks are checked
// as the pods they become, each violation at the field to change.
func TestWorkflowsAndPipelines(t *testing.T) {
	objs := decode(t, `
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: wf, namespace: ci}
spec:
  securityContext: {runAsNonRoot: true}
  templates:
  - name: build
    container:
      image: golang:1.25
      securityContext: {privileged: true}
---
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: tr, namespace: ci}
spec:
  podTemplate: {hostNetwork: true}
  taskSpec:
    stepTemplate: {securityContext: {privileged: true}}
    steps:
    - {name: test, image: "golang@sha256:`+strings.Repeat("2", 64)+`"}
    - {name: lint, image: "lint:v1", securityContext: {privileged: false}}
`)
	c, err := policy.New(policy.WithLevel(policy.Baseline))
	require.NoError(t, err)
	res, err := c.Check(t.Context(), objs)
	require.NoError(t, err)
	got := brief(res.Violations)
	for _, want := range []string{
		"pss/privileged Workflow ci/wf spec.templates[name=build].container.securityContext.privileged",
		"image-digest Workflow ci/wf spec.templates[name=build].container.image",
		"pss/privileged TaskRun ci/tr spec.taskSpec.steps[name=test].securityContext.privileged",
		"pss/hostNamespaces TaskRun ci/tr spec.podTemplate.hostNetwork",
		"image-digest TaskRun ci/tr spec.taskSpec.steps[name=lint].image",
	} {
		assert.Contains(t, got, want)
	}
	assert.NotContains(t, got, "pss/privileged TaskRun ci/tr spec.taskSpec.steps[name=lint].securityContext.privileged",
		"a step's own securityContext wins over the stepTemplate's")
	assert.NotContains(t, got, "image-digest TaskRun ci/tr spec.taskSpec.steps[name=test].image")
	for _, v := range res.Violations {
		if v.Object.Kind == "Workflow" {
			assert.Equal(t, deploy.ObjectRef{Group: "argoproj.io", Kind: "Workflow", Namespace: "ci", Name: "wf"}, v.Object)
		}
	}
}

// TestTektonTaskUnpinned: a Tekton Task step with an image by tag is reported.
func TestTektonTaskUnpinned(t *testing.T) {
	c, err := policy.New(policy.WithLevel(policy.Privileged))
	require.NoError(t, err)
	res, err := c.Check(t.Context(), decode(t, `{"apiVersion":"tekton.dev/v1","kind":"Task","metadata":{"name":"t"},
	  "spec":{"steps":[{"name":"push","image":"gcr.io/kaniko-project/executor:latest"}]}}`))
	require.NoError(t, err)
	assert.Contains(t, brief(res.Violations), "image-digest Task /t spec.steps[name=push].image")
	assert.Contains(t, brief(res.Violations), "image-latest Task /t spec.steps[name=push].image")
}

// TestUnrecognisedImage: an image deep in a kind nobody interprets is reported, not
// skipped.
func TestUnrecognisedImage(t *testing.T) {
	c, err := policy.New(policy.WithLevel(policy.Privileged))
	require.NoError(t, err)
	res, err := c.Check(t.Context(), decode(t, `{"apiVersion":"example.com/v1","kind":"Mystery","metadata":{"name":"m","namespace":"x"},
	  "spec":{"runner":{"settings":[{"name":"a","image":"evil:latest"}]}}}`))
	require.NoError(t, err)
	require.Len(t, res.Violations, 1)
	v := res.Violations[0]
	assert.Equal(t, "image-unrecognised", v.Rule)
	assert.Equal(t, deploy.ObjectRef{Group: "example.com", Kind: "Mystery", Namespace: "x", Name: "m"}, v.Object)
	assert.Equal(t, "spec.runner.settings[name=a].image", v.Path)
	assert.Contains(t, v.Message, `"evil:latest"`)
	assert.False(t, res.Passed())

	c, err = policy.New(policy.WithLevel(policy.Privileged), policy.Disable("image-unrecognised", "Mystery objects are checked by the mystery team"))
	require.NoError(t, err)
	res, err = c.Check(t.Context(), decode(t, `{"apiVersion":"example.com/v1","kind":"Mystery","metadata":{"name":"m"},"spec":{"image":"evil:latest"}}`))
	require.NoError(t, err)
	assert.True(t, res.Passed())
	assert.True(t, slices.ContainsFunc(res.Disabled, func(d policy.Disabled) bool { return d.Rule == "image-unrecognised" }))
}

// TestPackageImages: a Tekton bundle and a Crossplane package by tag are reported
// like a container's image, and a TaskRun from git as an unrecognised image.
func TestPackageImages(t *testing.T) {
	c, err := policy.New(policy.WithLevel(policy.Privileged))
	require.NoError(t, err)
	res, err := c.Check(t.Context(), decode(t, `{"apiVersion":"pkg.crossplane.io/v1","kind":"Provider","metadata":{"name":"aws"},"spec":{"package":"xpkg.upbound.io/evil/provider-aws:latest"}}
{"apiVersion":"tekton.dev/v1beta1","kind":"TaskRun","metadata":{"name":"tr","namespace":"ci"},"spec":{"taskRef":{"name":"t","bundle":"docker.io/evil/t@sha256:0000000000000000000000000000000000000000000000000000000000000000"}}}
{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"git","namespace":"ci"},"spec":{"taskRef":{"resolver":"git","params":[]}}}`))
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{
		"image-digest Provider /aws spec.package",
		"image-latest Provider /aws spec.package",
		"image-unrecognised TaskRun ci/git spec.taskRef.resolver",
	}, brief(res.Violations))
}
