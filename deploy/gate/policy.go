package gate

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/scan/policy"
	"github.com/shipkit/shipkit/sign"
)

// ManifestPolicy checks the manifests of objects. *policy.Checker (package
// scan/policy: Pod Security levels and hardening rules) implements it; a caller can
// bring their own rules by returning the same Result.
type ManifestPolicy interface {
	Check(ctx context.Context, objs []*unstructured.Unstructured) (*policy.Result, error)
}

var _ ManifestPolicy = (*policy.Checker)(nil)

// ObjectPolicy is the user's own rules on objects, judged beside the built-in ones:
// package scan/policy/rego's Policy (Rego, conftest's conventions),
// scan/policy/vap's Policies (ValidatingAdmissionPolicies, offline) and
// scan/policy/gatekeeper's Policies (Gatekeeper ConstraintTemplates and
// Constraints, offline) implement it.
// Its reasons deny, its warnings only warn; the gate adds both to its decision as
// they are. It has deploy.Gate's method, so any deploy.Gate can serve as one. The
// gate links neither OPA nor the API server's CEL: the caller chooses.
type ObjectPolicy interface {
	Check(ctx context.Context, objs []*unstructured.Unstructured) (*deploy.Decision, error)
}

// WithObjectPolicy adds the user's own policies on objects (see [ObjectPolicy]);
// each one's error is the gate's error (it could not decide), and so is a nil
// Decision without an error.
func WithObjectPolicy(p ...ObjectPolicy) Option {
	return func(g *Gate) { g.objectPolicies = append(g.objectPolicies, p...) }
}

// WithConditions adds attestation conditions to the gate's judgement of every
// verified image (sign.Policy.Judge, per platform for an index), beside
// RequireAttestations and FailOn: for example a Rego policy on verified predicates
// (package scan/policy/rego's Policy.Condition). A condition's reasons deny the
// image. It needs a verifier; a condition with a Validate method is validated by
// New.
func WithConditions(c ...sign.Condition) Option {
	return func(g *Gate) { g.conditions = append(g.conditions, c...) }
}

// objectPolicyDecisions runs the user's object policies in turn and adds their
// reasons and warnings to d.
func (g *Gate) objectPolicyDecisions(ctx context.Context, objs []*unstructured.Unstructured, d *deploy.Decision) error {
	for i, p := range g.objectPolicies {
		pd, err := p.Check(ctx, objs)
		if err != nil {
			return fmt.Errorf("gate: object policy %d: %w", i+1, err)
		}
		if pd == nil {
			// A policy that returns no decision has not judged: counting it as
			// an allow would let a broken policy pass everything.
			return fmt.Errorf("gate: object policy %d (%T) returned no decision and no error", i+1, p)
		}
		d.Deny(pd.Reasons...)
		d.Warn(pd.Warnings...)
	}
	return nil
}

// policyReasons runs the manifest policy and turns each violation into a reason. An
// object the policy cannot read is an error: the gate cannot vouch for it.
func (g *Gate) policyReasons(ctx context.Context, objs []*unstructured.Unstructured) ([]deploy.Reason, error) {
	res, err := g.policy.Check(ctx, objs)
	if err != nil {
		return nil, fmt.Errorf("gate: manifest policy: %w", err)
	}
	if res == nil {
		return nil, nil
	}
	out := make([]deploy.Reason, 0, len(res.Violations))
	for _, v := range res.Violations {
		msg := v.Message
		if v.Path != "" {
			msg = v.Path + ": " + msg
		}
		if v.Fix != "" {
			msg += " (fix: " + v.Fix + ")"
		}
		out = append(out, deploy.Reason{Reason: sign.Reason{Code: deploy.ReasonPolicy, Message: "[" + v.Rule + "] " + msg}, Object: v.Object, Rule: v.Rule})
	}
	return out, nil
}
