package gate

import (
	"fmt"

	"github.com/shipkit/shipkit/sign"
)

// attestationRules turns RequireAttestations, FailOn, MaxReportAge and
// WithConditions into the sign.Policy whose Judge checks them, and returns what is
// wrong with their values.
func (g *Gate) attestationRules() []string {
	var problems []string
	if g.hasMaxAge && !g.hasFailOn {
		problems = append(problems, "MaxReportAge bounds the reports FailOn reads: add FailOn")
	}
	if g.hasMaxAge && g.maxAge <= 0 && g.maxAge != sign.NoMaxReportAge {
		problems = append(problems, fmt.Sprintf("MaxReportAge(%s): want a positive duration, or sign.NoMaxReportAge for any age", g.maxAge))
	}
	for i, c := range g.conditions {
		if c == nil {
			problems = append(problems, fmt.Sprintf("WithConditions: condition %d is nil", i+1))
			continue
		}
		if v, ok := c.(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				problems = append(problems, fmt.Sprintf("WithConditions: condition %d (%s): %v", i+1, c, err))
			}
		}
	}
	if len(g.required) == 0 && !g.hasFailOn && len(g.conditions) == 0 || len(problems) > 0 {
		return problems
	}
	p := &sign.Policy{RequiredPredicates: g.required}
	if g.hasFailOn {
		rule := sign.VulnRule{FailOn: g.failOn, MaxReportAge: g.maxAge}
		if err := rule.Validate(); err != nil {
			return append(problems, fmt.Sprintf("FailOn: %v", err))
		}
		p.Conditions = []sign.Condition{rule}
	}
	p.Conditions = append(p.Conditions, g.conditions...)
	g.judge = p
	return nil
}
