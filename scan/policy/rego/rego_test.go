package rego_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/scan/policy/rego"
	"github.com/shipkit/shipkit/sign"
)

const mainPolicy = `package main

import rego.v1

deny contains msg if {
	input.kind == "Deployment"
	not input.metadata.labels.owner
	msg := sprintf("%s has no owner label", [input.metadata.name])
}

violation_privileged contains {"msg": msg, "container": c.name} if {
	some c in input.spec.template.spec.containers
	c.securityContext.privileged
	msg := sprintf("container %s is privileged", [c.name])
}

warn contains "no team annotation" if {
	not input.metadata.annotations.team
}

# A complete rule undefined for most objects must not hide the others.
deny_configmap := "ConfigMaps are not deployed by this pipeline" if input.kind == "ConfigMap"

# Helpers are not judging rules.
is_deployment if input.kind == "Deployment"
`

func deployment(name string, labels map[string]any, privileged bool) *unstructured.Unstructured {
	c := map[string]any{"name": "app", "image": "registry.example/app@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
	if privileged {
		c["securityContext"] = map[string]any{"privileged": true}
	}
	meta := map[string]any{"name": name, "namespace": "shop"}
	if labels != nil {
		meta["labels"] = labels
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
		"spec": map[string]any{"replicas": int64(2), "template": map[string]any{"spec": map[string]any{"containers": []any{c}}}},
	}}
}

func configMap(name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": "shop", "annotations": map[string]any{"team": "a"}},
	}}
}

func compile(t *testing.T, src string, opts ...rego.Option) *rego.Policy {
	t.Helper()
	p, err := rego.Compile(t.Context(), []rego.Module{{Name: "policy.rego", Source: src}}, opts...)
	require.NoError(t, err)
	return p
}

func TestEval(t *testing.T) {
	p := compile(t, mainPolicy)
	res, err := p.Eval(t.Context(), []*unstructured.Unstructured{
		deployment("web", map[string]any{"owner": "shop"}, false),
		deployment("root", nil, true),
		configMap("settings"),
	})
	require.NoError(t, err)
	var got []string
	for _, f := range res.Findings {
		got = append(got, fmt.Sprintf("%s %s", f.Level, f))
	}
	assert.Equal(t, []string{
		"warn [rego:main.warn] Deployment/shop/web: no team annotation",
		"deny [rego:main.deny] Deployment/shop/root: root has no owner label",
		"deny [rego:main.violation_privileged] Deployment/shop/root: container app is privileged",
		"warn [rego:main.warn] Deployment/shop/root: no team annotation",
		"deny [rego:main.deny_configmap] ConfigMap/shop/settings: ConfigMaps are not deployed by this pipeline",
	}, got)
	assert.Equal(t, map[string]any{"container": "app"}, res.Findings[2].Metadata, "an object message keeps its other keys")
	assert.Equal(t, deploy.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: "shop", Name: "root"}, res.Findings[1].Object)
	assert.False(t, res.Passed())

	res, err = p.Eval(t.Context(), []*unstructured.Unstructured{deployment("web", map[string]any{"owner": "shop"}, false)})
	require.NoError(t, err)
	assert.True(t, res.Passed(), "warnings pass")
	assert.Len(t, res.Findings, 1)
}

func TestCheckIsAGateObjectPolicy(t *testing.T) {
	p := compile(t, mainPolicy)
	g, err := gate.New(gate.WithObjectPolicy(p))
	require.NoError(t, err)
	d, err := g.Check(t.Context(), []*unstructured.Unstructured{deployment("root", nil, false)})
	require.NoError(t, err)
	require.Len(t, d.Reasons, 1, "%s", d)
	assert.Equal(t, deploy.ReasonPolicy, d.Reasons[0].Code)
	assert.Equal(t, "rego:main.deny", d.Reasons[0].Rule)
	assert.Equal(t, "Deployment/shop/root: [rego:main.deny] root has no owner label", d.Reasons[0].String())
	require.Len(t, d.Warnings, 1)
	assert.Equal(t, "rego:main.warn", d.Warnings[0].Rule)

	d, err = g.Check(t.Context(), []*unstructured.Unstructured{deployment("web", map[string]any{"owner": "x"}, false)})
	require.NoError(t, err)
	assert.True(t, d.Allowed(), "a warn rule does not deny: %s", d)
	assert.Len(t, d.Warnings, 1)
}

func TestNamespaces(t *testing.T) {
	src := `package k8s.security
deny contains "hostNetwork" if input.spec.template.spec.hostNetwork
`
	mods := []rego.Module{{Name: "main.rego", Source: mainPolicy}, {Name: "security.rego", Source: src}}
	p, err := rego.Compile(t.Context(), mods, rego.WithNamespaces("k8s.security"))
	require.NoError(t, err)
	obj := deployment("web", nil, false)
	require.NoError(t, unstructured.SetNestedField(obj.Object, true, "spec", "template", "spec", "hostNetwork"))
	res, err := p.Eval(t.Context(), []*unstructured.Unstructured{obj})
	require.NoError(t, err)
	require.Len(t, res.Findings, 1, "only the named namespace judges")
	assert.Equal(t, "rego:k8s.security.deny", res.Findings[0].RuleID())

	p, err = rego.Compile(t.Context(), mods, rego.WithNamespaces("main", "k8s.security"))
	require.NoError(t, err)
	res, err = p.Eval(t.Context(), []*unstructured.Unstructured{obj})
	require.NoError(t, err)
	assert.Len(t, res.Findings, 3)

	_, err = rego.Compile(t.Context(), mods, rego.WithNamespaces("nothing.here"))
	assert.ErrorIs(t, err, rego.ErrNoRules)
}

func TestCompileErrorNamesFileAndLine(t *testing.T) {
	fsys := fstest.MapFS{
		"policies/ok.rego":       {Data: []byte(mainPolicy)},
		"policies/ok_test.rego":  {Data: []byte("this is not rego but a test file is skipped")},
		"policies/syntax.rego":   {Data: []byte("package main\n\ndeny contains msg if {\n\tmsg := \"x\"\n")},
		"policies/README.md":     {Data: []byte("not a policy")},
		"policies/sub/more.rego": {Data: []byte("package main\nwarn contains \"x\" if true\n")},
	}
	_, err := rego.LoadFS(t.Context(), fsys)
	var ce *rego.CompileError
	require.ErrorAs(t, err, &ce)
	require.NotEmpty(t, ce.Problems)
	assert.Equal(t, "policies/syntax.rego", ce.Problems[0].File)
	assert.Positive(t, ce.Problems[0].Line)
	assert.Contains(t, err.Error(), "policies/syntax.rego:")

	// Parses, but does not compile: an unknown function on line 4.
	fsys["policies/syntax.rego"] = &fstest.MapFile{Data: []byte("package main\n\ndeny contains msg if {\n\tmsg := no_such_function(input)\n}\n")}
	_, err = rego.LoadFS(t.Context(), fsys)
	require.ErrorAs(t, err, &ce)
	require.Len(t, ce.Problems, 1)
	assert.Equal(t, rego.Problem{File: "policies/syntax.rego", Line: 4, Column: 9, Message: ce.Problems[0].Message}, ce.Problems[0])
	assert.Contains(t, err.Error(), "policies/syntax.rego:4:9: rego_type_error: undefined function no_such_function")

	delete(fsys, "policies/syntax.rego")
	p, err := rego.LoadFS(t.Context(), fsys)
	require.NoError(t, err)
	res, err := p.Eval(t.Context(), []*unstructured.Unstructured{configMap("c")})
	require.NoError(t, err)
	assert.Len(t, res.Findings, 2, "sub/more.rego is loaded too: %v", res.Findings)
}

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.rego"), []byte(mainPolicy), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a_test.rego"), []byte("package main\ntest_x if true\n"), 0o600))
	extra := filepath.Join(t.TempDir(), "extra.rego")
	require.NoError(t, os.WriteFile(extra, []byte("package main\nwarn_extra contains \"extra\" if true\n"), 0o600))
	p, err := rego.LoadFiles(t.Context(), []string{dir, extra})
	require.NoError(t, err)
	res, err := p.Eval(t.Context(), []*unstructured.Unstructured{configMap("c")})
	require.NoError(t, err)
	assert.Len(t, res.Findings, 2)

	_, err = rego.LoadFiles(t.Context(), []string{filepath.Join(dir, "missing.rego")})
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// TestLoadCancelled: a cancelled context stops the loading before it reads a file.
func TestLoadCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := rego.LoadFS(ctx, fstest.MapFS{"p.rego": {Data: []byte(mainPolicy)}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "rego: read policies: context canceled", err.Error())

	file := filepath.Join(t.TempDir(), "p.rego")
	require.NoError(t, os.WriteFile(file, []byte(mainPolicy), 0o600))
	_, err = rego.LoadFiles(ctx, []string{file})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "rego: context canceled", err.Error())
}

func TestTimeout(t *testing.T) {
	// About 10^10 steps: far longer than the timeout, and no memory growth.
	p := compile(t, `package main
deny contains "never" if {
	some i, j
	numbers.range(1, 100000)[i]
	numbers.range(1, 100000)[j]
	i * j < 0
}
`, rego.WithTimeout(200*time.Millisecond))
	start := time.Now()
	_, err := p.Eval(t.Context(), []*unstructured.Unstructured{configMap("c")})
	require.ErrorIs(t, err, rego.ErrTimeout)
	assert.Contains(t, err.Error(), "ConfigMap/shop/c")
	assert.Less(t, time.Since(start), 10*time.Second, "bounded")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = p.Eval(ctx, []*unstructured.Unstructured{configMap("c")})
	assert.ErrorIs(t, err, context.Canceled)
}

func TestBadMessages(t *testing.T) {
	for name, src := range map[string]string{
		"number msg":       `deny contains {"msg": 42} if true`,
		"no msg":           `deny contains {"message": "x"} if true`,
		"number":           `deny contains 7 if true`,
		"nested array msg": `deny contains ["a"] if true`,
	} {
		t.Run(name, func(t *testing.T) {
			p := compile(t, "package main\n"+src+"\n")
			_, err := p.Eval(t.Context(), []*unstructured.Unstructured{configMap("c")})
			require.ErrorIs(t, err, rego.ErrBadMessage)
			assert.Contains(t, err.Error(), "ConfigMap/shop/c: rule main.deny")
		})
	}
	// A boolean rule judges without a message of its own.
	p := compile(t, "package main\ndeny if input.kind == \"ConfigMap\"\n")
	res, err := p.Eval(t.Context(), []*unstructured.Unstructured{configMap("c"), deployment("d", nil, false)})
	require.NoError(t, err)
	require.Len(t, res.Findings, 1)
	assert.Equal(t, "[rego:main.deny] ConfigMap/shop/c: rule deny is true", res.Findings[0].String())
}

func TestOptions(t *testing.T) {
	mods := []rego.Module{{Name: "p.rego", Source: mainPolicy}}
	_, err := rego.Compile(t.Context(), mods, rego.WithTimeout(0), rego.WithConcurrency(0), rego.WithNamespaces("not a package"))
	require.ErrorIs(t, err, rego.ErrInvalidOption)
	for _, want := range []string{"WithTimeout(0s)", "WithConcurrency(0)", `WithNamespaces("not a package")`} {
		assert.ErrorContains(t, err, want)
	}
	_, err = rego.Compile(t.Context(), nil)
	assert.ErrorIs(t, err, rego.ErrNoRules)
	_, err = rego.Compile(t.Context(), []rego.Module{{Name: "h.rego", Source: "package main\nhelper if true\n"}})
	assert.ErrorIs(t, err, rego.ErrNoRules, "no judging rule would allow everything")

	p, err := rego.Compile(t.Context(), []rego.Module{{Name: "d.rego", Source: `package main
deny contains sprintf("registry %s is not allowed", [r]) if {
	some c in input.spec.template.spec.containers
	r := split(c.image, "/")[0]
	not r in data.allowed_registries
}
`}}, rego.WithData(map[string]any{"allowed_registries": []string{"registry.example"}}))
	require.NoError(t, err)
	obj := deployment("web", nil, false)
	res, err := p.Eval(t.Context(), []*unstructured.Unstructured{obj})
	require.NoError(t, err)
	assert.Empty(t, res.Findings)
	require.NoError(t, unstructured.SetNestedSlice(obj.Object, []any{map[string]any{"name": "x", "image": "evil.example/x:1"}}, "spec", "template", "spec", "containers"))
	res, err = p.Eval(t.Context(), []*unstructured.Unstructured{obj})
	require.NoError(t, err)
	require.Len(t, res.Findings, 1)
	assert.Equal(t, "registry evil.example is not allowed", res.Findings[0].Message)

	v0 := "package main\n\ndeny[msg] {\n\tinput.kind == \"ConfigMap\"\n\tmsg := \"v0\"\n}\n"
	_, err = rego.Compile(t.Context(), []rego.Module{{Name: "v0.rego", Source: v0}})
	var ce *rego.CompileError
	require.ErrorAs(t, err, &ce, "Rego v1 by default")
	p, err = rego.Compile(t.Context(), []rego.Module{{Name: "v0.rego", Source: v0}}, rego.WithRegoV0())
	require.NoError(t, err)
	res, err = p.Eval(t.Context(), []*unstructured.Unstructured{configMap("c")})
	require.NoError(t, err)
	require.Len(t, res.Findings, 1)
	assert.Equal(t, "v0", res.Findings[0].Message)
}

func TestConcurrentEqualsSequential(t *testing.T) {
	var objs []*unstructured.Unstructured
	for i := range 300 {
		switch i % 3 {
		case 0:
			objs = append(objs, deployment(fmt.Sprintf("d%d", i), nil, i%2 == 0))
		case 1:
			objs = append(objs, deployment(fmt.Sprintf("d%d", i), map[string]any{"owner": "x"}, false))
		default:
			objs = append(objs, configMap(fmt.Sprintf("c%d", i)))
		}
	}
	one := compile(t, mainPolicy, rego.WithConcurrency(1))
	four := compile(t, mainPolicy, rego.WithConcurrency(4))
	a, err := one.Eval(t.Context(), objs)
	require.NoError(t, err)
	b, err := four.Eval(t.Context(), objs)
	require.NoError(t, err)
	assert.Equal(t, a, b)
	assert.Equal(t, 450, len(a.Findings)) // 100 x (deny, warn) + 50 privileged + 100 warn + 100 ConfigMaps
	assert.Equal(t, one.Digest(), four.Digest(), "concurrency is not part of what the policy checks")
}

const predicatePolicy = `package main

deny contains sprintf("package %s is licensed %s", [p.name, p.licenseConcluded]) if {
	some p in input.packages
	p.licenseConcluded == "GPL-3.0-only"
}

warn contains "ignored on attestations" if true
`

const builderPolicy = `package main

deny contains sprintf("builder %s is not the CI", [input.runDetails.builder.id]) if {
	input.runDetails.builder.id != "https://ci.example/builder"
}
`

func TestCondition(t *testing.T) {
	sbom := func(license string) sign.Attestation {
		return sign.Attestation{PredicateType: sign.PredicateSPDX, Signer: "ci",
			Predicate: json.RawMessage(`{"spdxVersion":"SPDX-2.3","packages":[{"name":"zlib","licenseConcluded":"Zlib"},{"name":"readline","licenseConcluded":"` + license + `"}]}`)}
	}
	noGPL := compile(t, predicatePolicy).Condition(sign.PredicateSPDX)
	judge := &sign.Policy{Conditions: []sign.Condition{noGPL}}
	assert.Empty(t, judge.Judge(&sign.Verified{Attestations: []sign.Attestation{sbom("MIT")}}), "the warn rule does not deny")

	reasons := judge.Judge(&sign.Verified{Attestations: []sign.Attestation{sbom("GPL-3.0-only")}})
	require.Len(t, reasons, 1)
	assert.Equal(t, sign.ReasonCondition, reasons[0].Code)
	assert.Equal(t, sign.PredicateSPDX+" signed by ci: [rego:main.deny] package readline is licensed GPL-3.0-only", reasons[0].Message)

	reasons = judge.Judge(&sign.Verified{})
	require.Len(t, reasons, 1)
	assert.Equal(t, sign.ReasonMissingAttestation, reasons[0].Code)

	broken := sign.Attestation{PredicateType: sign.PredicateSPDX, Signer: "ci", Predicate: json.RawMessage(`{not json`)}
	reasons = judge.Judge(&sign.Verified{Attestations: []sign.Attestation{broken}})
	require.Len(t, reasons, 1, "an unreadable predicate is a reason, not a pass")
	assert.Contains(t, reasons[0].Message, "cannot be read")

	slow := compile(t, `package main
deny contains "never" if {
	some i, j
	numbers.range(1, 100000)[i]
	numbers.range(1, 100000)[j]
	i * j < 0
}
`, rego.WithTimeout(100*time.Millisecond)).Condition(sign.PredicateSPDX)
	reasons = (&sign.Policy{Conditions: []sign.Condition{slow}}).Judge(&sign.Verified{Attestations: []sign.Attestation{sbom("MIT")}})
	require.Len(t, reasons, 1, "a timeout is a reason, not a pass")
	assert.Contains(t, reasons[0].Message, "timed out")

	// Conditions describe themselves by the policy's digest: alike only if they check alike.
	builder := compile(t, builderPolicy)
	assert.NotEqual(t, noGPL.String(), builder.Condition(sign.PredicateSPDX).String())
	assert.Equal(t, builder.Condition(sign.PredicateSLSAProvenance).String(), compile(t, builderPolicy).Condition(sign.PredicateSLSAProvenance).String())
	assert.Error(t, (&sign.Policy{TrustedKeys: []sign.TrustedKey{{PEM: nil}}, Conditions: []sign.Condition{builder.Condition("")}}).Validate())
}

type verifier map[string]*sign.Verified

func (v verifier) Verify(_ context.Context, d name.Digest) (*sign.Verified, error) {
	if got, ok := v[d.DigestStr()]; ok {
		got.Digest = d
		return got, nil
	}
	return nil, errors.New("unknown digest")
}

func TestConditionInTheGate(t *testing.T) {
	const (
		good = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		bad  = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	)
	prov := func(builder string) *sign.Verified {
		return &sign.Verified{Signers: []string{"ci"}, Attestations: []sign.Attestation{{PredicateType: sign.PredicateSLSAProvenance, Signer: "ci",
			Predicate: json.RawMessage(`{"buildDefinition":{},"runDetails":{"builder":{"id":"` + builder + `"}}}`)}}}
	}
	v := verifier{good: prov("https://ci.example/builder"), bad: prov("https://laptop.example")}
	g, err := gate.New(gate.WithVerifier(v), gate.WithConditions(compile(t, builderPolicy).Condition(sign.PredicateSLSAProvenance)))
	require.NoError(t, err)
	web := deployment("web", nil, false)
	other := deployment("other", nil, false)
	require.NoError(t, unstructured.SetNestedSlice(other.Object, []any{map[string]any{"name": "app", "image": "registry.example/app@" + bad}}, "spec", "template", "spec", "containers"))
	d, err := g.Check(t.Context(), []*unstructured.Unstructured{web, other})
	require.NoError(t, err)
	require.Len(t, d.Reasons, 1, "%s", d)
	assert.Equal(t, "other", d.Reasons[0].Object.Name)
	assert.Equal(t, "registry.example/app@"+bad, d.Reasons[0].Image)
	assert.Contains(t, d.Reasons[0].Message, "[rego:main.deny] builder https://laptop.example is not the CI")
}
