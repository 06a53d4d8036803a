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
