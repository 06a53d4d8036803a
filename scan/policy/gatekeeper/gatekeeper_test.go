package gatekeeper_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/scan/policy/gatekeeper"
)

func obj(t testing.TB, manifest string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	require.NoError(t, yaml.Unmarshal([]byte(manifest), &u.Object))
	return u
}

func namespace(t testing.TB, name string, labels string) *unstructured.Unstructured {
	return obj(t, fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels: {%s}\n", name, labels))
}

func pod(t testing.TB, ns, name, labels, image, limits string) *unstructured.Unstructured {
	return obj(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s, labels: {%s}}
spec:
  containers:
  - name: app
    image: %s
    resources: {limits: {%s}}
`, name, ns, labels, image, limits))
}

func deployment(t testing.TB, ns, name, labels, limits string) *unstructured.Unstructured {
	return obj(t, fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s, namespace: %s, labels: {%s}}
spec:
  template:
    spec:
      containers:
      - name: app
        image: registry.example/app:1
        resources: {limits: {%s}}
`, name, ns, labels, limits))
}

func load(t *testing.T, opts ...gatekeeper.Option) *gatekeeper.Policies {
	t.Helper()
	p, err := gatekeeper.LoadFiles(t.Context(), []string{"testdata"}, opts...)
	require.NoError(t, err)
	return p
}

// verdicts prints each finding as "object rule action".
func verdicts(res *gatekeeper.Result) []string {
	out := make([]string, 0, len(res.Findings))
	for _, f := range res.Findings {
		out = append(out, f.Object.String()+" "+f.RuleID()+" "+string(f.Action))
	}
	return out
}

func TestMatchAndActions(t *testing.T) {
	p := load(t)
	objs := []*unstructured.Unstructured{
		namespace(t, "shop", "tier: production, owner: team-shop"),
		namespace(t, "scratch", ""),
		namespace(t, "lab", "owner: Alice"),
		// Labelled and within limits: allowed.
		deployment(t, "shop", "web", "owner: team-web", "cpu: 100m, memory: 512Mi"),
		// No owner (deny), no limits (two warnings).
		deployment(t, "shop", "api", "", ""),
		// kube-system matches excludedNamespaces kube-*: no owner needed.
		deployment(t, "kube-system", "dns", "", "cpu: 100m, memory: 64Mi"),
		// shop's tier: production selects the repo constraint: docker.io is denied.
		pod(t, "shop", "debug", "", "docker.io/busybox", "cpu: 300m, memory: 2Gi"),
		// scratch has no tier label: the repo constraint does not apply.
		pod(t, "scratch", "debug", "", "docker.io/busybox", "cpu: 100m, memory: 1Gi"),
		// The exempt label keeps the limits constraint's labelSelector away.
		pod(t, "shop", "exempt", "limits.example/exempt: \"yes\"", "registry.example/app:1", ""),
		// A namespace not among the objects has only kubernetes.io/metadata.name.
		pod(t, "elsewhere", "debug", "", "docker.io/busybox", "cpu: 100m, memory: 1Gi"),
	}
	res, err := p.Eval(t.Context(), objs)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{
		"Namespace/scratch gatekeeper:K8sRequiredLabels/must-have-owner deny",
		"Namespace/lab gatekeeper:K8sRequiredLabels/must-have-owner deny",
		"Deployment/shop/api gatekeeper:K8sContainerLimits/container-must-have-limits warn",
		"Deployment/shop/api gatekeeper:K8sContainerLimits/container-must-have-limits warn",
		"Deployment/shop/api gatekeeper:K8sRequiredLabels/must-have-owner deny",
		"Pod/shop/debug gatekeeper:K8sAllowedRepos/repo-is-registry-example deny",
		"Pod/shop/debug gatekeeper:K8sContainerLimits/container-must-have-limits warn",
		"Pod/shop/debug gatekeeper:K8sContainerLimits/container-must-have-limits warn",
	}, verdicts(res))
	assert.True(t, res.Denied())
	assert.Empty(t, res.Unmatched)

	msgs := map[string][]string{}
	for _, f := range res.Findings {
		msgs[f.Object.String()] = append(msgs[f.Object.String()], f.Message)
	}
	assert.Contains(t, msgs["Namespace/scratch"], `you must provide labels: {"owner"}`)
	assert.Contains(t, msgs["Namespace/lab"], "label <owner: Alice> does not match ^team-[a-z]+$")
	assert.Contains(t, msgs["Pod/shop/debug"], `container <app> has an invalid image repo <docker.io/busybox>, allowed repos are ["registry.example/"]`)
	assert.Contains(t, msgs["Pod/shop/debug"], "container <app> cpu limit <300m> is higher than the maximum allowed of <200m>")
	assert.Contains(t, msgs["Pod/shop/debug"], "container <app> memory limit <2Gi> is higher than the maximum allowed of <1Gi>")
	assert.ElementsMatch(t, msgs["Deployment/shop/api"], []string{
		"container <app> has no cpu limit", "container <app> has no memory limit", `you must provide labels: {"owner"}`,
	})
	for _, f := range res.Findings {
		if f.Object.Name == "scratch" {
			assert.Equal(t, map[string]any{"missing_labels": []any{"owner"}}, f.Details, "the violation's details")
		}
	}
}

// TestReviewInput pins the input a template sees: input.review as the webhook
// builds it for a CREATE, and input.parameters.
func TestReviewInput(t *testing.T) {
	fsys := fstest.MapFS{"p.yaml": {Data: []byte(`apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: echo}
spec:
  crd:
    spec:
      names: {kind: Echo}
      validation: {openAPIV3Schema: {type: object, properties: {say: {type: string}}}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package echo
      violation[{"msg": msg}] {
        r := input.review
        msg := sprintf("%v|%v|%v|%v|%v|%v|%v|%v", [r.kind.group, r.kind.version, r.kind.kind, r.name, r.namespace, r.operation, r.object.spec.replicas, input.parameters.say])
      }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: Echo
metadata: {name: all}
spec: {parameters: {say: hi}}
`)}}
	p, err := gatekeeper.LoadFS(t.Context(), fsys)
	require.NoError(t, err)
	d := obj(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec: {replicas: 3}\n")
	res, err := p.Eval(t.Context(), []*unstructured.Unstructured{d})
	require.NoError(t, err)
	require.Len(t, res.Findings, 1)
	assert.Equal(t, "apps|v1|Deployment|web|shop|CREATE|3|hi", res.Findings[0].Message)
	assert.Equal(t, gatekeeper.Deny, res.Findings[0].Action, "no enforcementAction is deny")
}

// TestThroughGate: a Constraint's denial is the gate's, its warnings the gate's
// warnings.
func TestThroughGate(t *testing.T) {
	g, err := gate.New(gate.WithObjectPolicy(load(t)))
	require.NoError(t, err)
	d, err := g.Check(t.Context(), []*unstructured.Unstructured{
		namespace(t, "shop", "tier: production, owner: team-shop"),
		pod(t, "shop", "debug", "", "docker.io/busybox@sha256:"+strings.Repeat("a", 64), ""),
	})
	require.NoError(t, err)
	require.False(t, d.Allowed())
	require.Len(t, d.Reasons, 1)
	r := d.Reasons[0]
	assert.Equal(t, deploy.ReasonPolicy, r.Code)
	assert.Equal(t, "gatekeeper:K8sAllowedRepos/repo-is-registry-example", r.Rule)
	assert.Equal(t, "Pod/shop/debug", r.Object.String())
	assert.Contains(t, r.Message, "invalid image repo <docker.io/busybox@sha256:")
	assert.Len(t, d.Warnings, 2, "the limits constraint warns")

	d, err = g.Check(t.Context(), []*unstructured.Unstructured{
		namespace(t, "shop", "tier: production, owner: team-shop"),
		pod(t, "shop", "ok", "", "registry.example/app@sha256:"+strings.Repeat("b", 64), "cpu: 100m, memory: 1Gi"),
	})
	require.NoError(t, err)
	assert.True(t, d.Allowed(), "%v", d)
	assert.Empty(t, d.Warnings)
}

func TestScopedAndDryRun(t *testing.T) {
	templates, err := os.ReadFile("testdata/templates.yaml")
	require.NoError(t, err)
	constraints := `
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sAllowedRepos
metadata: {name: dry}
spec:
  enforcementAction: dryrun
  parameters: {repos: ["registry.example/"]}
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sAllowedRepos
metadata: {name: scoped-webhook}
spec:
  enforcementAction: scoped
  scopedEnforcementActions:
  - action: warn
    enforcementPoints: [{name: validation.gatekeeper.sh}]
  - action: deny
    enforcementPoints: [{name: audit.gatekeeper.sh}]
  parameters: {repos: ["registry.example/"]}
`
	p, err := gatekeeper.LoadFS(t.Context(), fstest.MapFS{"all.yaml": {Data: append(templates, constraints...)}})
	require.NoError(t, err)
	res, err := p.Eval(t.Context(), []*unstructured.Unstructured{pod(t, "x", "p", "", "docker.io/busybox", "cpu: 1m, memory: 1Mi")})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{
		"Pod/x/p gatekeeper:K8sAllowedRepos/dry dryrun",
		"Pod/x/p gatekeeper:K8sAllowedRepos/scoped-webhook warn",
	}, verdicts(res))
	assert.False(t, res.Denied())
	// Templates without a Constraint judge nothing: a warning.
	assert.ElementsMatch(t, []string{
		"template k8srequiredlabels has no constraint among the policies: it judges nothing",
		"template k8scontainerlimits has no constraint among the policies: it judges nothing",
	}, res.Unmatched)
	d, err := p.Check(t.Context(), []*unstructured.Unstructured{pod(t, "x", "p", "", "docker.io/busybox", "")})
	require.NoError(t, err)
	assert.True(t, d.Allowed())
	assert.Len(t, d.Warnings, 4)
	assert.True(t, slices.ContainsFunc(d.Warnings, func(r deploy.Reason) bool { return strings.Contains(r.Message, "] dryrun: container <app>") }))
}

const badRego = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: broken}
spec:
  crd: {spec: {names: {kind: Broken}}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package broken

      violation[{"msg": msg}] {
        msg := undefined_thing
      }
`

func TestBadInput(t *testing.T) {
	ctx := t.Context()
	templates, err := os.ReadFile("testdata/templates.yaml")
	require.NoError(t, err)

	_, err = gatekeeper.LoadFS(ctx, fstest.MapFS{"t.yaml": {Data: []byte(badRego)}})
	var ce *gatekeeper.CompileError
	require.ErrorAs(t, err, &ce)
	require.NotEmpty(t, ce.Problems)
	assert.Equal(t, "broken", ce.Problems[0].Template)
	assert.Equal(t, 4, ce.Problems[0].Line, "the line in the template's Rego: %v", err)
	assert.Contains(t, err.Error(), "template broken: line 4")
	assert.Contains(t, err.Error(), "undefined_thing")

	syntax := strings.Replace(badRego, "msg := undefined_thing", "msg := ", 1)
	_, err = gatekeeper.LoadFS(ctx, fstest.MapFS{"t.yaml": {Data: []byte(syntax)}})
	require.ErrorAs(t, err, &ce, "a syntax error: %v", err)
	assert.Equal(t, 5, ce.Problems[0].Line, "the closing brace after the bare :=: %v", err)

	_, err = gatekeeper.LoadFS(ctx, fstest.MapFS{"t.yaml": {Data: append(templates, `
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sNoSuchThing
metadata: {name: orphan}
`...)}})
	require.ErrorIs(t, err, gatekeeper.ErrNoTemplate)
	assert.Contains(t, err.Error(), "K8sNoSuchThing/orphan")

	_, err = gatekeeper.LoadFS(ctx, fstest.MapFS{"t.yaml": {Data: []byte(`apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: celonly}
spec:
  crd: {spec: {names: {kind: CelOnly}}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    code:
    - engine: K8sNativeValidation
      source:
        validations:
        - expression: "has(object.metadata.labels)"
          message: "labels"
`)}})
	require.ErrorIs(t, err, gatekeeper.ErrUnsupportedEngine)
	assert.Contains(t, err.Error(), "celonly")

	_, err = gatekeeper.LoadFS(ctx, fstest.MapFS{"c.yaml": {Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")}})
	require.ErrorIs(t, err, gatekeeper.ErrNoPolicies)

	_, err = gatekeeper.LoadFS(ctx, fstest.MapFS{"t.yaml": {Data: templates}}, gatekeeper.WithTimeout(0), gatekeeper.WithConcurrency(0))
	require.ErrorIs(t, err, gatekeeper.ErrInvalidOption)
}

func TestTimeout(t *testing.T) {
	slow := `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: slow}
spec:
  crd: {spec: {names: {kind: Slow}}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package slow
      violation[{"msg": "never"}] {
        count([x | x := numbers.range(1, 100000000)[_]; x < 0]) > 0
      }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: Slow
metadata: {name: slow}
`
	p, err := gatekeeper.LoadFS(t.Context(), fstest.MapFS{"s.yaml": {Data: []byte(slow)}}, gatekeeper.WithTimeout(200*time.Millisecond))
	require.NoError(t, err)
	start := time.Now()
	_, err = p.Eval(t.Context(), []*unstructured.Unstructured{pod(t, "x", "p", "", "a", "")})
	require.ErrorIs(t, err, gatekeeper.ErrTimeout)
	assert.Contains(t, err.Error(), "Pod/x/p")
	assert.Less(t, time.Since(start), 10*time.Second, "the timeout bounds the evaluation")
	assert.False(t, errors.Is(err, gatekeeper.ErrNoPolicies))
}

// TestInventory: templates see WithInventory's objects as data.inventory, and its
// Namespaces' labels select.
func TestInventory(t *testing.T) {
	unique := `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: uniquename}
spec:
  crd: {spec: {names: {kind: UniqueName}}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package uniquename
      violation[{"msg": msg}] {
        other := data.inventory.namespace[ns][_]["ConfigMap"][name]
        ns != input.review.object.metadata.namespace
        name == input.review.object.metadata.name
        msg := sprintf("ConfigMap %v also exists in namespace %v", [name, ns])
      }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: UniqueName
metadata: {name: unique}
spec:
  match:
    namespaceSelector: {matchLabels: {team: a}}
`
	cm := func(ns string) *unstructured.Unstructured {
		return obj(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: "+ns+"}\n")
	}
	p, err := gatekeeper.LoadFS(t.Context(), fstest.MapFS{"u.yaml": {Data: []byte(unique)}},
		gatekeeper.WithInventory(cm("prod"), namespace(t, "dev", "team: a")))
	require.NoError(t, err)
	res, err := p.Eval(t.Context(), []*unstructured.Unstructured{cm("dev"), cm("test")})
	require.NoError(t, err)
	assert.Equal(t, []string{"ConfigMap/dev/settings gatekeeper:UniqueName/unique deny"}, verdicts(res))
	assert.Equal(t, "ConfigMap settings also exists in namespace prod", res.Findings[0].Message)
}

// TestDefaultNamespace: a namespaced object without metadata.namespace (Helm's
// output) is judged in WithDefaultNamespace's namespace, and is an error without
// it; a cluster-scoped one needs none.
func TestDefaultNamespace(t *testing.T) {
	helmed := deployment(t, "x", "web", "", "cpu: 100m, memory: 64Mi")
	unstructured.RemoveNestedField(helmed.Object, "metadata", "namespace")
	role := obj(t, "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: reader}\n")

	_, err := load(t).Eval(t.Context(), []*unstructured.Unstructured{role, helmed})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Deployment/web: Deployment is namespaced but has no metadata.namespace")

	res, err := load(t, gatekeeper.WithDefaultNamespace("shop")).Eval(t.Context(), []*unstructured.Unstructured{role, helmed})
	require.NoError(t, err)
	assert.Equal(t, []string{"Deployment/shop/web gatekeeper:K8sRequiredLabels/must-have-owner deny"}, verdicts(res))

	res, err = load(t, gatekeeper.WithDefaultNamespace("kube-system")).Eval(t.Context(), []*unstructured.Unstructured{role, helmed})
	require.NoError(t, err)
	assert.Empty(t, res.Findings, "kube-system is excluded")

	_, err = gatekeeper.LoadFiles(t.Context(), []string{"testdata"}, gatekeeper.WithDefaultNamespace("Not A Namespace"))
	require.ErrorIs(t, err, gatekeeper.ErrInvalidOption)
}
