package gate

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/scan/policy"
)

// ManifestPolicy checks the manifests of objects. *policy.Checker (package
// scan/policy: Pod Security levels and hardening rules) implements it; a caller can
// bring their own rules by returning the same Result.
type ManifestPolicy interface {
	Check(ctx context.Context, objs []*unstructured.Unstructured) (*policy.Result, error)
}

var _ ManifestPolicy = (*policy.Checker)(nil)

// policyReasons runs the manifest policy and turns each finding into a reason. An
// object the policy cannot read is an error: the gate cannot vouch for it.
func (g *Gate) policyReasons(ctx context.Context, objs []*unstructured.Unstructured) ([]deploy.Reason, error) {
	res, err := g.policy.Check(ctx, objs)
	if err != nil {
		return nil, fmt.Errorf("gate: manifest policy: %w", err)
	}
	if res == nil {
		return nil, nil
	}
	// Findings name objects by kind, namespace and name; find their API groups.
	type key struct{ kind, ns, name string }
	refs := map[key]deploy.ObjectRef{}
	for _, o := range objs {
		r := deploy.RefOf(o)
		refs[key{r.Kind, r.Namespace, r.Name}] = r
	}
	out := make([]deploy.Reason, 0, len(res.Findings))
	for _, f := range res.Findings {
		ref, ok := refs[key{f.Kind, f.Namespace, f.Name}]
		if !ok {
			ref = deploy.ObjectRef{Kind: f.Kind, Namespace: f.Namespace, Name: f.Name}
		}
		msg := f.Message
		if f.Path != "" {
			msg = f.Path + ": " + msg
		}
		if f.Fix != "" {
			msg += " (fix: " + f.Fix + ")"
		}
		out = append(out, deploy.Reason{Object: ref, Code: deploy.ReasonPolicy, Rule: f.Rule, Message: "[" + f.Rule + "] " + msg})
	}
	return out, nil
}
