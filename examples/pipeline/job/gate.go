package job

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/scan/policy"
	"github.com/shipkit/shipkit/sign"
)

// gate decides whether the rendered objects may be deployed: every image pinned by
// digest, signed by a trusted key, attested (SBOM, vulnerabilities, provenance),
// without findings at or above FailOn, and the manifests pass the restricted Pod
// Security level and the hardening rules, and the user's own policies (Rego,
// ValidatingAdmissionPolicies) of the config: their denials deny, naming the rule
// and the object; their warnings are the decision's Warnings.
func (j *Job) gate(ctx context.Context) (string, error) {
	if err := j.need("objects", len(j.Objects) > 0 && j.signing != nil); err != nil {
		return "", err
	}
	v, err := j.verifier()
	if err != nil {
		return "", err
	}
	checker, err := policy.New(policy.WithLevel(policy.Restricted))
	if err != nil {
		return "", err
	}
	opts := []gate.Option{
		gate.WithVerifier(v),
		gate.RequireAttestations(sign.PredicateSLSAProvenance, sign.PredicateVuln),
		gate.FailOn(j.cfg.FailOn),
		gate.WithManifestPolicy(checker),
		gate.WithObserver(j.obs),
		gate.WithLogger(j.log),
	}
	opts = append(opts, j.gatePolicies()...)
	if j.Repo.Scheme() == "http" {
		// The gate reads plain HTTP only from registries it lists: here the one the
		// job pushed to (the in-process registry, or a local one).
		opts = append(opts, gate.WithRegistries(gate.Registries{Insecure: []string{j.Repo.RegistryStr()}}))
	}
	g, err := gate.New(opts...)
	if err != nil {
		return "", err
	}
	objs, canary, err := j.judged()
	if err != nil {
		return "", err
	}
	d, err := g.Check(ctx, objs)
	if err != nil {
		return "", err
	}
	j.Decision = d
	if err := d.Err(); err != nil {
		return "", err // a *deploy.DecisionError: errors.Is(err, sign.ErrDenied)
	}
	below := ""
	if n := len(j.Report.Findings); n > 0 {
		below = fmt.Sprintf("; %s below the threshold", countFindings(j.Report))
	}
	own := ""
	if len(j.policyNames) > 0 {
		own = ", " + strings.Join(j.policyNames, ", ")
	}
	if n := len(d.Warnings); n > 0 {
		below += fmt.Sprintf("; %d warning(s)", n)
	}
	return fmt.Sprintf("allowed: %d objects%s, fail-on %s, Pod Security restricted%s%s", len(j.Objects), canary,
		strings.ToLower(j.cfg.FailOn.String()), own, below), nil
}

// judged returns the objects the gate judges, which are those the deploy stage may
// apply: the rendered objects (placed in their namespaces by render) and, when the
// config asks for a canary rollout, the canary Deployment derived from the stable
// one, which a release after the first applies in its place (and the rollout
// promotes onto it). The gate judges it whether or not stable runs yet: which
// release this is is known only at deploy. The note names the canary for the
// summary.
func (j *Job) judged() ([]*unstructured.Unstructured, string, error) {
	j.canary = nil
	if j.cfg.Prometheus == "" {
		return j.Objects, "", nil
	}
	p, err := j.planCanary()
	if err != nil {
		return nil, "", err
	}
	j.canary = p
	objs := append(append([]*unstructured.Unstructured{}, j.Objects...), p.canary)
	return objs, fmt.Sprintf(" + canary %s", deploy.RefOf(p.canary)), nil
}
