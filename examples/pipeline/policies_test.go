package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/policy/rego"
	"github.com/shipkit/shipkit/sign"
)

// writeFile writes content to name under dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// A conftest-style policy: the Deployment must say which team owns it (deny), and a
// Service without a description is worth a warning.
const teamRego = `package main

deny contains msg if {
	input.kind == "Deployment"
	not input.metadata.labels.team
	msg := sprintf("%s %s has no team label", [input.kind, input.metadata.name])
}

warn contains msg if {
	input.kind == "Service"
	not input.metadata.annotations.description
	msg := sprintf("service %s has no description", [input.metadata.name])
}
`

// The same warn rule alone: nothing denies.
const warnRego = `package main

warn contains msg if {
	input.kind == "Service"
	not input.metadata.annotations.description
	msg := sprintf("service %s has no description", [input.metadata.name])
}
`

// admissionPolicy is a ValidatingAdmissionPolicy, as a cluster would enforce it,
// bound with the given action: Deployments run at least minReplicas.
func admissionPolicy(minReplicas, action string) string {
	return `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: min-replicas
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["deployments"]
  validations:
  - expression: "object.spec.replicas >= ` + minReplicas + `"
    messageExpression: "'deployment ' + object.metadata.name + ' runs ' + string(object.spec.replicas) + ' replicas, production needs ` + minReplicas + `'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: min-replicas-prod
spec:
  policyName: min-replicas
  validationActions: [` + action + `]
`
}

// TestMainJobOwnPolicies: -rego and -vap put the user's own policies in the gate
// beside the built-in rules. A Rego deny and a ValidatingAdmissionPolicy's Deny
// binding fail the job as a denial (exit code 3) naming the rule and the object,
// and nothing is deployed; with only a warn rule and a policy the objects pass,
// the job goes through and shows the warning.
func TestMainJobOwnPolicies(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "binaries") // the second run reuses the first's build
	policies := writeFile(t, dir, "policy/team.rego", teamRego)
	vapDeny := writeFile(t, dir, "vap-deny.yaml", admissionPolicy("3", "Deny"))

	out, err := runJob(t, "-platforms", "linux/amd64", "-binary-cache", cache, "-rego", filepath.Dir(policies), "-vap", vapDeny)
	require.Error(t, err, out)
	assert.ErrorIs(t, err, sign.ErrDenied)
	assert.Equal(t, exitDenied, exitCode(err))
	assert.Regexp(t, `(?m)^gate +denied `, out)
	assert.Regexp(t, `(?m)^deploy +skipped `, out)
	assert.Contains(t, out, "denied: Deployment/hello/hello: [rego:main.deny] Deployment hello has no team label\n")
	assert.Contains(t, out, "denied: Deployment/hello/hello: [vap:min-replicas/min-replicas-prod] deployments.apps \"hello\" is forbidden: "+
		"ValidatingAdmissionPolicy 'min-replicas' with binding 'min-replicas-prod' denied request: deployment hello runs 2 replicas, production needs 3\n",
		"the API server's own denial")
	assert.Contains(t, out, "warning: Service/hello/hello: [rego:main.warn] service hello has no description\n",
		"a denied gate shows its warnings too")
	assert.NotContains(t, out, "Namespace/hello created", "nothing is deployed")

	warnOnly := writeFile(t, dir, "warn/warn.rego", warnRego)
	vapPass := writeFile(t, dir, "vap-pass.yaml", admissionPolicy("2", "Deny"))
	out, err = runJob(t, "-platforms", "linux/amd64", "-binary-cache", cache, "-rego", warnOnly, "-vap", vapPass)
	require.NoError(t, err, out)
	assert.Contains(t, out, "allowed: 3 objects, fail-on critical, Pod Security restricted, Rego "+warnOnly+
		", ValidatingAdmissionPolicies "+vapPass+"; 1 finding (1 High) below the threshold; 1 warning(s)")
	assert.Contains(t, out, "    warning: Service/hello/hello: [rego:main.warn] service hello has no description\n")
	assert.Contains(t, out, "    Deployment/hello/hello created\n")
	assert.Regexp(t, `(?m)^image 127\.0\.0\.1:\d+/shipkit/hello@sha256:[0-9a-f]{64}$`, out)
}

// TestMainJobBadPolicies: a Rego file that does not compile, or an admission
// policy whose CEL does not, fails the job before it builds anything, naming
// file:line (the policy and its field for CEL); a missing file is named too.
func TestMainJobBadPolicies(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.rego", "package main\n\ndeny contains msg if {\n\tinput.kind ==\n}\n")
	badCEL := writeFile(t, dir, "bad-vap.yaml", regexp.MustCompile(`object\.spec\.replicas >= 3`).
		ReplaceAllString(admissionPolicy("3", "Deny"), "object.spec.replicas >>= 3"))
	for _, tt := range []struct {
		args []string
		says *regexp.Regexp
	}{
		{[]string{"-rego", bad}, regexp.MustCompile(`rego policies: .*` + regexp.QuoteMeta(bad) + `:[45]:\d+: `)},
		{[]string{"-vap", badCEL}, regexp.MustCompile(`admission policies ` + regexp.QuoteMeta(badCEL) + `: .*min-replicas.*validations\[0\]\.expression`)},
		{[]string{"-rego", filepath.Join(dir, "missing.rego")}, regexp.MustCompile(`rego policy: .*missing\.rego`)},
	} {
		fs := flag.NewFlagSet("pipeline", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o, err := parseFlags(fs, append([]string{"-source", "../hello", "-platforms", "linux/amd64"}, tt.args...))
		require.NoError(t, err)
		o.plain = true
		err = run(t.Context(), o, io.Discard)
		require.Error(t, err, "%q", tt.args)
		assert.Regexp(t, tt.says, err.Error())
		assert.Equal(t, exitFailed, exitCode(err), "a broken policy is a failure, not a denial")
		if tt.args[0] == "-rego" && filepath.Base(tt.args[1]) == "bad.rego" {
			var ce *rego.CompileError
			assert.True(t, errors.As(err, &ce), "%v", err)
		}
	}
}
