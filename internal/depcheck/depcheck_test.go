package depcheck

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Heavy dependencies, by the module path prefix of their packages.
var (
	syft       = "github.com/anchore/syft/"
	grype      = "github.com/anchore/grype/"
	stereo     = "github.com/anchore/stereoscope/"
	sigstore   = "github.com/sigstore/"
	kubernetes = "k8s.io/"
	clientGo   = "k8s.io/client-go/"
	kustomize  = "sigs.k8s.io/kustomize/"
	promClient = "github.com/prometheus/client_golang/"
	ggcrRemote = "github.com/google/go-containerregistry/pkg/v1/remote"
	helmSDK    = "helm.sh/helm/"
	goGit      = "github.com/go-git/"
	// The user's own policies: OPA (scan/policy/rego) and the API server's
	// ValidatingAdmissionPolicy plugin with CEL (scan/policy/vap). The gate takes
	// them through interfaces and links neither.
	opa          = "github.com/open-policy-agent/"
	celGo        = "github.com/google/cel-go/"
	apiserverVAP = "k8s.io/apiserver/pkg/admission/plugin/"
	// Gatekeeper's constraint framework and target handler (scan/policy/gatekeeper).
	gkFramework = "github.com/open-policy-agent/frameworks/"
	gatekeeper  = "github.com/open-policy-agent/gatekeeper/"
	// The OpenTelemetry adapter is for callers who want spans; no stage links it.
	otelAdapter = "github.com/shipkit/shipkit/observe/otel"
)

// rules lists, per package pattern of this module, the prefixes none of its
// dependencies may have. A pattern ending in /... covers every package below it.
var rules = []struct {
	pattern   string
	forbidden []string
}{
	{"./build/...", []string{syft, grype, stereo, sigstore, kubernetes, kustomize, promClient, otelAdapter}},
	{"./scan", []string{grype, sigstore, clientGo, kustomize, promClient, ggcrRemote}},
	{"./scan/...", []string{otelAdapter}},
	{"./scan/report", []string{syft, grype, stereo, sigstore, kubernetes, "github.com/google/go-containerregistry/"}},
	{"./sign", []string{syft, grype, stereo, sigstore, kubernetes, kustomize, ggcrRemote}},
	{"./sign/...", []string{otelAdapter}},
	{"./deploy/...", []string{syft, grype, stereo, sigstore, otelAdapter}},
	// Helm charts are deploy/render/helm's: deploy and the kustomize renderer link no Helm.
	{"./deploy", []string{helmSDK}},
	{"./deploy/render", []string{helmSDK}},
	// deploy, its gate and the webhook serving it link no policy engine: Rego and
	// ValidatingAdmissionPolicies come in through gate.ObjectPolicy and sign.Condition.
	{"./deploy", []string{opa, celGo, apiserverVAP}},
	{"./deploy/gate", []string{opa, celGo, apiserverVAP}},
	{"./deploy/admission", []string{opa, celGo, apiserverVAP}},
	{"./sign", []string{opa, celGo, apiserverVAP}},
	{"./scan/policy", []string{opa, celGo, apiserverVAP}},
	// One engine each: Rego links no CEL, the admission policies no OPA.
	{"./scan/policy/rego", []string{celGo, apiserverVAP, syft, grype, stereo, sigstore}},
	{"./scan/policy/vap", []string{opa, syft, grype, stereo, sigstore}},
	// Gatekeeper's libraries are scan/policy/gatekeeper's alone (deploy's rules above
	// forbid all of open-policy-agent already); plain Rego links none of them.
	{"./deploy", []string{gkFramework, gatekeeper}},
	{"./deploy/gate", []string{gkFramework, gatekeeper}},
	{"./scan/policy/rego", []string{gkFramework, gatekeeper}},
	{"./scan/policy/gatekeeper", []string{apiserverVAP, syft, grype, stereo, sigstore, kustomize, helmSDK, goGit}},
	// Git write-back is deploy/gitops's alone: applying, gating, rendering link no go-git.
	{"./deploy", []string{goGit}},
	{"./deploy/render", []string{goGit}},
	{"./deploy/gate", []string{goGit}},
	{"./deploy/apply", []string{goGit}},
	// The manifest policy reads Kubernetes objects only: no SBOM or vulnerability code.
	{"./scan/policy", []string{syft, grype, stereo, sigstore, promClient}},
	{"./mesh/...", []string{syft, grype, stereo, sigstore, kustomize, otelAdapter}},
	// mesh's top package is interfaces and validation: a program choosing a router
	// links only that router's client.
	{"./mesh", []string{kubernetes, kustomize, promClient, syft, grype, stereo, sigstore}},
	{"./observe", []string{syft, grype, stereo, sigstore, kubernetes, kustomize, promClient}},
	// Analysis works with any metrics provider: it links no backend's client.
	{"./observe/analysis", []string{kubernetes, promClient, otelAdapter}},
}

func TestStageDependencies(t *testing.T) {
	for _, r := range rules {
		t.Run(strings.TrimPrefix(r.pattern, "./"), func(t *testing.T) {
			deps := goList(t, "-deps", r.pattern)
			require.NotEmpty(t, deps)
			for _, dep := range deps {
				for _, bad := range r.forbidden {
					assert.False(t, strings.HasPrefix(dep, bad),
						"%s depends on %s (a %s dependency); move that code to a subpackage", r.pattern, dep, strings.TrimSuffix(bad, "/"))
				}
			}
		})
	}
}

// TestRulesCoverStages fails when a stage's top package has no rule, so a new
// stage or a rename cannot slip past the check.
func TestRulesCoverStages(t *testing.T) {
	covered := map[string]bool{}
	for _, r := range rules {
		for _, p := range goList(t, r.pattern) {
			covered[p] = true
		}
	}
	for _, stage := range []string{"build", "scan", "sign", "deploy", "mesh", "observe"} {
		assert.True(t, covered["github.com/shipkit/shipkit/"+stage], "no dependency rule covers package %s", stage)
	}
}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", append([]string{"list"}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
	}
	require.NoError(t, err)
	return strings.Fields(string(out))
}
