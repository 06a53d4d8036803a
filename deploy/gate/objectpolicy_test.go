package gate_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/sign"
)

type objectPolicyFunc func(context.Context, []*unstructured.Unstructured) (*deploy.Decision, error)

func (f objectPolicyFunc) Check(ctx context.Context, objs []*unstructured.Unstructured) (*deploy.Decision, error) {
	return f(ctx, objs)
}

func TestObjectPolicy(t *testing.T) {
	web := deploy.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: "shop", Name: "web"}
	deny := objectPolicyFunc(func(_ context.Context, objs []*unstructured.Unstructured) (*deploy.Decision, error) {
		d := &deploy.Decision{}
		for _, o := range objs {
			d.Deny(deploy.Reason{Reason: sign.Reason{Code: deploy.ReasonPolicy, Message: "no owner label"}, Object: deploy.RefOf(o), Rule: "rego:main.deny"})
		}
		return d, nil
	})
	warn := objectPolicyFunc(func(_ context.Context, objs []*unstructured.Unstructured) (*deploy.Decision, error) {
		d := &deploy.Decision{}
		d.Warn(deploy.Reason{Reason: sign.Reason{Code: deploy.ReasonPolicy, Message: "no team annotation"}, Object: deploy.RefOf(objs[0]), Rule: "rego:main.warn"})
		return d, nil
	})
	objs := []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)}

	g, err := gate.New(gate.WithObjectPolicy(warn))
	require.NoError(t, err)
	d, err := g.Check(t.Context(), objs)
	require.NoError(t, err)
	assert.True(t, d.Allowed(), "a warning does not deny")
	require.Len(t, d.Warnings, 1)
	assert.Equal(t, web, d.Warnings[0].Object)
	assert.Equal(t, "allowed\nwarnings:\n  Deployment/shop/web: no team annotation", d.String())

	g, err = gate.New(gate.WithObjectPolicy(warn, deny))
	require.NoError(t, err)
	d, err = g.Check(t.Context(), objs)
	require.NoError(t, err)
	assert.False(t, d.Allowed())
	require.Len(t, d.Reasons, 1)
	assert.Equal(t, "rego:main.deny", d.Reasons[0].Rule)
	assert.Len(t, d.Warnings, 1)

	broken := objectPolicyFunc(func(context.Context, []*unstructured.Unstructured) (*deploy.Decision, error) {
		return nil, errors.New("rego: evaluation timed out")
	})
	g, err = gate.New(gate.WithObjectPolicy(deny, broken))
	require.NoError(t, err)
	_, err = g.Check(t.Context(), objs)
	assert.ErrorContains(t, err, "object policy 2: rego: evaluation timed out")

	silent := objectPolicyFunc(func(context.Context, []*unstructured.Unstructured) (*deploy.Decision, error) {
		return nil, nil
	})
	g, err = gate.New(gate.WithObjectPolicy(warn, silent))
	require.NoError(t, err)
	d, err = g.Check(t.Context(), objs)
	assert.Nil(t, d, "a policy without a decision does not allow")
	assert.ErrorContains(t, err, "object policy 2 (gate_test.objectPolicyFunc) returned no decision")

	_, err = gate.New(gate.WithObjectPolicy(nil))
	assert.ErrorIs(t, err, deploy.ErrInvalidOption)
}

// builderCondition denies provenance whose builder id is not want; it validates
// that want is set.
type builderCondition struct{ want string }

func (c builderCondition) String() string { return "builder is " + c.want }

func (c builderCondition) Validate() error {
	if c.want == "" {
		return errors.New("no builder id")
	}
	return nil
}

func (c builderCondition) Check(atts []sign.Attestation) []sign.Reason {
	for _, a := range atts {
		var p struct {
			RunDetails struct {
				Builder struct{ ID string } `json:"builder"`
			} `json:"runDetails"`
		}
		if a.PredicateType == sign.PredicateSLSAProvenance && json.Unmarshal(a.Predicate, &p) == nil && p.RunDetails.Builder.ID == c.want {
			return nil
		}
	}
	return []sign.Reason{{Message: "no provenance by builder " + c.want}}
}

func TestConditions(t *testing.T) {
	prov := func(builder string) sign.Attestation {
		return sign.Attestation{PredicateType: sign.PredicateSLSAProvenance, Signer: "ci",
			Predicate: json.RawMessage(`{"runDetails":{"builder":{"id":"` + builder + `"}}}`)}
	}
	v := &fakeVerifier{verdicts: map[string]func(name.Digest) (*sign.Verified, error){
		digestA: verified(prov("https://ci.example/builder")),
		digestB: verified(prov("https://laptop.example")),
	}}
	g, err := gate.New(gate.WithVerifier(v), gate.WithConditions(builderCondition{want: "https://ci.example/builder"}))
	require.NoError(t, err)
	d, err := g.Check(t.Context(), []*unstructured.Unstructured{
		deployment("good", "registry.example/app@"+digestA),
		deployment("bad", "registry.example/app@"+digestB),
	})
	require.NoError(t, err)
	require.Len(t, d.Reasons, 1, "%s", d)
	r := d.Reasons[0]
	assert.Equal(t, "bad", r.Object.Name)
	assert.Equal(t, sign.ReasonCondition, r.Code)
	assert.Equal(t, "no provenance by builder https://ci.example/builder", r.Message)

	_, err = gate.New(gate.WithConditions(builderCondition{want: "x"}))
	assert.ErrorIs(t, err, deploy.ErrInvalidOption, "conditions need a verifier")
	_, err = gate.New(gate.WithVerifier(v), gate.WithConditions(builderCondition{}))
	assert.ErrorIs(t, err, deploy.ErrInvalidOption)
	assert.ErrorContains(t, err, "no builder id")
	_, err = gate.New(gate.WithVerifier(v), gate.WithConditions(nil))
	assert.ErrorIs(t, err, deploy.ErrInvalidOption)
}
