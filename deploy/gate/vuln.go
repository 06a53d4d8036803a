package gate

import (
	"fmt"

	"github.com/shipkit/shipkit/sign"
)

// attestationRules turns RequireAttestations, FailOn and MaxReportAge into the
// sign.Policy whose Judge checks them, and refuses invalid values.
func (g *Gate) attestationRules() error {
	if g.hasMaxAge && !g.hasFailOn {
		return fmt.Errorf("gate: MaxReportAge bounds the reports FailOn reads: add FailOn")
	}
	if g.hasMaxAge && g.maxAge <= 0 && g.maxAge != sign.NoMaxReportAge {
		return fmt.Errorf("gate: maximum report age %s: want a positive duration, or sign.NoMaxReportAge for any age", g.maxAge)
	}
	if len(g.required) == 0 && !g.hasFailOn {
		return nil
	}
	p := &sign.Policy{RequiredPredicates: g.required}
	if g.hasFailOn {
		rule := sign.VulnRule{FailOn: g.failOn, MaxReportAge: g.maxAge}
		if err := rule.Validate(); err != nil {
			return fmt.Errorf("gate: FailOn: %w", err)
		}
		p.Conditions = []sign.Condition{rule}
	}
	g.judge = p
	return nil
}
