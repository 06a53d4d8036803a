package vap_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/scan/policy/vap"
)

// policies returns the test's policies and bindings, their names suffixed with
// suffix (the cluster test creates them once per run), bound in namespaces
// labelled env=<env>.
func policies(suffix, env string) string {
	return strings.NewReplacer("SUFFIX", suffix, "ENV", env).Replace(`
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: max-replicas-SUFFIX}
spec:
  failurePolicy: Fail
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}
  validations:
  - expression: object.spec.replicas <= int(params.data.maxReplicas)
    messageExpression: "'replicas ' + string(object.spec.replicas) + ' above the limit ' + params.data.maxReplicas"
    reason: Invalid
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: max-replicas-SUFFIX}
spec:
  policyName: max-replicas-SUFFIX
  validationActions: [Deny]
  paramRef: {name: limits, parameterNotFoundAction: Deny}
  matchResources:
    namespaceSelector: {matchLabels: {env: ENV}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: team-label-SUFFIX}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}
  matchConditions:
  - name: not-skipped
    expression: "!has(object.metadata.annotations) || !('skip-team-check' in object.metadata.annotations)"
  variables:
  - name: labels
    expression: "has(object.metadata.labels) ? object.metadata.labels : {}"
  validations:
  - expression: "'team' in variables.labels"
    message: every object needs a team label
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: team-label-warn-SUFFIX}
spec:
  policyName: team-label-SUFFIX
  validationActions: [Warn]
  matchResources:
    namespaceSelector: {matchLabels: {env: ENV}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: no-latest-SUFFIX}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}
  validations:
  - expression: "object.spec.template.spec.containers.all(c, !c.image.endsWith(':latest'))"
    messageExpression: "'containers run :latest: ' + object.spec.template.spec.containers.filter(c, c.image.endsWith(':latest')).map(c, c.name).join(', ')"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: no-latest-SUFFIX}
spec:
  policyName: no-latest-SUFFIX
  validationActions: [Deny, Audit]
  matchResources:
    namespaceSelector: {matchLabels: {env: ENV}}
`)
}

func objects(ns string) string {
	return strings.ReplaceAll(`
apiVersion: v1
kind: ConfigMap
metadata: {name: labelled, namespace: NS, labels: {team: shop}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unlabelled, namespace: NS}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: skipped, namespace: NS, annotations: {skip-team-check: "yes"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: small, namespace: NS, labels: {team: shop}}
spec:
  replicas: 2
  selector: {matchLabels: {app: small}}
  template:
    metadata: {labels: {app: small}}
    spec: {containers: [{name: app, image: "registry.example/app:1.0"}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: big, namespace: NS, labels: {team: shop}}
spec:
  replicas: 5
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec: {containers: [{name: app, image: "registry.example/app:1.0"}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: latest, namespace: NS}
spec:
  replicas: 1
  selector: {matchLabels: {app: latest}}
  template:
    metadata: {labels: {app: latest}}
    spec: {containers: [{name: app, image: "registry.example/app:latest"}, {name: side, image: "registry.example/side:latest"}]}
`, "NS", ns)
}

// params returns the namespace (labelled env) and the limits ConfigMap.
func params(ns, env string) string {
	return fmt.Sprintf(`
apiVersion: v1
kind: Namespace
metadata: {name: %s, labels: {env: %s}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: limits, namespace: %s, labels: {team: platform}}
data: {maxReplicas: "3"}
`, ns, env, ns)
}

func parse(t *testing.T, docs string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(docs, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		u := &unstructured.Unstructured{}
		require.NoError(t, yaml.Unmarshal([]byte(doc), &u.Object), doc)
		out = append(out, u)
	}
	return out
}

func TestEval(t *testing.T) {
	ps, err := vap.New(parse(t, policies("t", "prod")), vap.WithParams(parse(t, params("shop", "prod"))...))
	require.NoError(t, err)
	res, err := ps.Eval(t.Context(), parse(t, objects("shop")))
	require.NoError(t, err)
	var got []string
	for _, f := range res.Findings {
		got = append(got, f.String())
	}
	assert.Equal(t, []string{
		`[vap:team-label-t/team-label-warn-t] ConfigMap/shop/unlabelled: Warn: Validation failed for ValidatingAdmissionPolicy 'team-label-t' with binding 'team-label-warn-t': every object needs a team label`,
		`[vap:max-replicas-t/max-replicas-t] Deployment/shop/big: Deny: deployments.apps "big" is forbidden: ValidatingAdmissionPolicy 'max-replicas-t' with binding 'max-replicas-t' denied request: replicas 5 above the limit 3`,
		`[vap:team-label-t/team-label-warn-t] Deployment/shop/latest: Warn: Validation failed for ValidatingAdmissionPolicy 'team-label-t' with binding 'team-label-warn-t': every object needs a team label`,
		`[vap:no-latest-t/no-latest-t] Deployment/shop/latest: Deny: deployments.apps "latest" is forbidden: ValidatingAdmissionPolicy 'no-latest-t' with binding 'no-latest-t' denied request: containers run :latest: app, side`,
		`[vap:no-latest-t/no-latest-t] Deployment/shop/latest: Audit: containers run :latest: app, side`,
	}, got)
	assert.Empty(t, res.Unmatched)
	assert.True(t, res.Denied())

	// In a namespace the bindings do not select, nothing applies: each binding is unmatched.
	res, err = ps.Eval(t.Context(), parse(t, objects("dev")))
	require.NoError(t, err)
	assert.Empty(t, res.Findings)
	assert.Len(t, res.Unmatched, 3)
	assert.Contains(t, res.Unmatched[0], "binding max-replicas-t (policy max-replicas-t) matches none of the 6 objects")
}

func TestParamNotFound(t *testing.T) {
	ps, err := vap.New(parse(t, policies("t", "prod")))
	require.NoError(t, err)
	objs := append(parse(t, objects("shop")), parse(t, params("shop", "prod"))[0]) // the namespace, no ConfigMap
	res, err := ps.Eval(t.Context(), objs)
	require.NoError(t, err)
	var msgs []string
	for _, f := range res.Findings {
		if f.Policy == "max-replicas-t" {
			msgs = append(msgs, f.Message)
		}
	}
	require.Len(t, msgs, 3, "parameterNotFoundAction Deny denies every Deployment")
	assert.Contains(t, msgs[0], "no params found for policy binding with `Deny` parameterNotFoundAction")
}

func TestCheckIsAGateObjectPolicy(t *testing.T) {
	ps, err := vap.New(parse(t, policies("t", "prod")), vap.WithParams(parse(t, params("shop", "prod"))...))
	require.NoError(t, err)
	g, err := gate.New(gate.WithObjectPolicy(ps))
	require.NoError(t, err)
	d, err := g.Check(t.Context(), parse(t, objects("shop")))
	require.NoError(t, err)
	var reasons []deploy.Reason // the gate also denies the images named by tag
	for _, r := range d.Reasons {
		if strings.HasPrefix(r.Rule, "vap:") {
			reasons = append(reasons, r)
		}
	}
	require.Len(t, reasons, 2, "%s", d)
	assert.Equal(t, deploy.ReasonPolicy, reasons[0].Code)
	assert.Equal(t, "vap:max-replicas-t/max-replicas-t", reasons[0].Rule)
	assert.Equal(t, deploy.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: "shop", Name: "big"}, reasons[0].Object)
	require.Len(t, d.Warnings, 3)
	assert.Contains(t, d.Warnings[2].Message, "audit: containers run :latest")

	d, err = g.Check(t.Context(), parse(t, objects("dev")))
	require.NoError(t, err)
	for _, r := range d.Reasons {
		assert.NotContains(t, r.Rule, "vap:")
	}
	require.Len(t, d.Warnings, 3, "unmatched bindings warn")
	assert.Equal(t, "ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io/max-replicas-t", d.Warnings[0].Object.String())
}

func TestBadInput(t *testing.T) {
	bad := `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: broken}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  validations:
  - expression: "object.metadata.name.startsWith("
  - expression: "true"
    messageExpression: "object.no_such_field +"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: broken}
spec: {policyName: broken, validationActions: [Deny]}
`
	_, err := vap.New(parse(t, bad))
	var ce *vap.CompileError
	require.ErrorAs(t, err, &ce)
	require.Len(t, ce.Problems, 2, "%v", err)
	assert.Equal(t, "spec.validations[0].expression", ce.Problems[0].Field)
	assert.Equal(t, "spec.validations[1].messageExpression", ce.Problems[1].Field)
	assert.Contains(t, err.Error(), "policy broken: spec.validations[0].expression: ")

	orphan := `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: lost}
spec: {policyName: missing, validationActions: [Warn]}
`
	unbound := `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: unbound}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  validations:
  - expression: "false"
`
	ps, err := vap.New(parse(t, orphan+"\n---\n"+unbound))
	require.NoError(t, err)
	res, err := ps.Eval(t.Context(), parse(t, objects("shop")))
	require.NoError(t, err)
	assert.Empty(t, res.Findings, "a policy without a binding judges nothing")
	assert.Equal(t, []string{
		"binding lost names policy missing, which is not among the policies given",
		"policy unbound has no binding among the objects given: it judges nothing",
	}, res.Unmatched)
	d, err := ps.Check(t.Context(), parse(t, objects("shop")))
	require.NoError(t, err)
	require.Len(t, d.Warnings, 2)
	assert.Equal(t, "ValidatingAdmissionPolicy.admissionregistration.k8s.io/unbound", d.Warnings[1].Object.String())

	// No policy at all would allow everything: New refuses it.
	_, err = vap.New(parse(t, orphan))
	assert.ErrorIs(t, err, vap.ErrNoPolicies, "bindings alone")
	_, err = vap.New(nil)
	assert.ErrorIs(t, err, vap.ErrNoPolicies)
	_, err = vap.New(parse(t, objects("shop")))
	assert.ErrorIs(t, err, vap.ErrNoPolicies, "objects without policies")

	_, err = vap.New(parse(t, strings.ReplaceAll(orphan, "validationActions: [Warn]", "validationActions: []")))
	assert.ErrorContains(t, err, "no validationActions")
	_, err = vap.New(nil, vap.WithParams(nil), vap.WithRESTMapper(nil), vap.WithDefaultNamespace("Not_A_Namespace"))
	assert.ErrorIs(t, err, vap.ErrInvalidOption)
	assert.ErrorContains(t, err, "WithDefaultNamespace")
}

// TestDefaultNamespace: Helm renders namespaced objects without
// metadata.namespace. Without WithDefaultNamespace they are refused, never judged
// as cluster-scoped (where no namespaceSelector would match and everything passes);
// with it they are judged as in that namespace, as apply -n would create them.
func TestDefaultNamespace(t *testing.T) {
	helm := parse(t, strings.ReplaceAll(objects("shop"), ", namespace: shop", ""))
	for _, o := range helm {
		require.Empty(t, o.GetNamespace())
	}
	ps, err := vap.New(parse(t, policies("t", "prod")), vap.WithParams(parse(t, params("shop", "prod"))...))
	require.NoError(t, err)
	_, err = ps.Eval(t.Context(), helm)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ConfigMap is namespaced but has no metadata.namespace")
	assert.Contains(t, err.Error(), "WithDefaultNamespace")

	want, err := ps.Eval(t.Context(), parse(t, objects("shop")))
	require.NoError(t, err)
	require.True(t, want.Denied())

	ps, err = vap.New(parse(t, policies("t", "prod")), vap.WithParams(parse(t, params("shop", "prod"))...),
		vap.WithDefaultNamespace("shop"))
	require.NoError(t, err)
	got, err := ps.Eval(t.Context(), helm)
	require.NoError(t, err)
	assert.Equal(t, want, got, "judged as if rendered with namespace shop")
	for _, o := range helm {
		assert.Empty(t, o.GetNamespace(), "the caller's objects are not changed")
	}

	// A namespace the bindings do not select: nothing applies.
	ps, err = vap.New(parse(t, policies("t", "prod")), vap.WithParams(parse(t, params("shop", "prod"))...),
		vap.WithDefaultNamespace("dev"))
	require.NoError(t, err)
	got, err = ps.Eval(t.Context(), helm)
	require.NoError(t, err)
	assert.Empty(t, got.Findings)
}
