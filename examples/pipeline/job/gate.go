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
	j.nameCanary(d)
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
// apply: the rendered objects, placed in their namespaces (again: render did, but a
// program may have added objects to [Job.Objects] since) and, when the config asks
// for a canary rollout, the canary Deployment derived from the stable one, which a
// release after the first applies in its place (and the rollout promotes onto it).
// The gate judges it whether or not stable runs yet: which release this is is known
// only at deploy. It judges the canary as the API server admits it: the canary
// names no replicas (the rollout scales it), so it has the apps/v1 default, 1. The
// note names the canary for the summary.
func (j *Job) judged() ([]*unstructured.Unstructured, string, error) {
	j.canary = nil
	if _, _, _, err := j.place(j.Objects); err != nil {
		return nil, "", err
	}
	if j.cfg.Prometheus == "" {
		return j.Objects, "", nil
	}
	p, err := j.planCanary()
	if err != nil {
		return nil, "", err
	}
	j.canary = p
	admitted := p.canary.DeepCopy()
	if _, ok, _ := unstructured.NestedFieldNoCopy(admitted.Object, "spec", "replicas"); !ok {
		if err := unstructured.SetNestedField(admitted.Object, int64(1), "spec", "replicas"); err != nil {
			return nil, "", fmt.Errorf("%s: canary Deployment %s: %w", canaryRollout, p.canary.GetName(), err)
		}
	}
	objs := append(append([]*unstructured.Unstructured{}, j.Objects...), admitted)
	return objs, fmt.Sprintf(" + canary %s", deploy.RefOf(p.canary)), nil
}

// nameCanary says, in each of the decision's denials and warnings about the canary
// Deployment, that it is the canary the -prometheus rollout derives from the stable
// Deployment: the user wrote no such object.
func (j *Job) nameCanary(d *deploy.Decision) {
	if j.canary == nil {
		return
	}
	ref := deploy.RefOf(j.canary.canary)
	say := fmt.Sprintf("the -prometheus canary of Deployment %s: ", j.canary.stable.GetName())
	for _, rs := range [][]deploy.Reason{d.Reasons, d.Warnings} {
		for i := range rs {
			if rs[i].Object == ref {
				rs[i].Message = say + rs[i].Message
			}
		}
	}
}
