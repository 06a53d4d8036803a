package rego

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/shipkit/shipkit/sign"
)

// Condition returns the policy as a condition on verified attestations of
// predicateType (sign.Condition: deploy/gate.WithConditions, or a verifier's
// sign.Policy.Conditions), as policy-controller's Rego policies on attestations:
// input is the predicate of each trusted attestation of that type, as signed (for
// example an SPDX document: deny if a package's licenseConcluded is GPL-3.0-only;
// SLSA provenance: deny unless runDetails.builder.id is the CI's).
//
// Every deny and violation message is a reason (sign.ReasonCondition) naming the
// predicate type, the signer and the rule; warn rules have no effect here (an
// attestation judgement has denials only). No attestation of the type is
// sign.ReasonMissingAttestation, and a predicate the policy cannot judge (not JSON,
// an evaluation error, [ErrTimeout]) is a reason too, never a pass.
//
// sign.Condition has no context: each predicate's evaluation is bounded by the
// policy's timeout ([WithTimeout]).
func (p *Policy) Condition(predicateType string) sign.Condition {
	return &condition{p: p, predicateType: predicateType}
}

type condition struct {
	p             *Policy
	predicateType string
}

// String names the policy by its digest: two conditions that describe themselves
// alike check alike.
func (c *condition) String() string {
	if c.p == nil {
		return "Rego policy (none) on predicate type " + c.predicateType
	}
	return fmt.Sprintf("Rego policy sha256:%s on predicate type %s", c.p.Digest(), c.predicateType)
}

// Validate refuses a condition with no policy or no predicate type.
func (c *condition) Validate() error {
	var errs []error
	if c.p == nil {
		errs = append(errs, errors.New("rego condition: no policy"))
	}
	if c.predicateType == "" {
		errs = append(errs, errors.New("rego condition: no predicate type"))
	}
	return errors.Join(errs...)
}

// Check judges each trusted attestation of the predicate type.
func (c *condition) Check(atts []sign.Attestation) []sign.Reason {
	if c.p == nil {
		return []sign.Reason{{Code: sign.ReasonCondition, Message: "Rego condition without a policy"}}
	}
	var reasons []sign.Reason
	found := false
	for _, a := range atts {
		if a.PredicateType != c.predicateType {
			continue
		}
		found = true
		var input any
		if err := json.Unmarshal(a.Predicate, &input); err != nil {
			reasons = append(reasons, sign.Reason{Code: sign.ReasonCondition,
				Message: fmt.Sprintf("%s signed by %s cannot be read: %v", c.predicateType, a.Signer, err)})
			continue
		}
		findings, err := c.p.eval(context.Background(), input)
		if err != nil {
			reasons = append(reasons, sign.Reason{Code: sign.ReasonCondition,
				Message: fmt.Sprintf("%s signed by %s cannot be judged by the Rego policy: %v", c.predicateType, a.Signer, err)})
			continue
		}
		for _, f := range findings {
			if f.Level != Deny {
				continue
			}
			reasons = append(reasons, sign.Reason{Code: sign.ReasonCondition,
				Message: fmt.Sprintf("%s signed by %s: %s", c.predicateType, a.Signer, f)})
		}
	}
	if !found {
		return []sign.Reason{{Code: sign.ReasonMissingAttestation,
			Message: "no attestation of predicate type " + c.predicateType + " by a trusted signer for the Rego policy to judge"}}
	}
	return reasons
}
