// Package suppress takes findings out of a vulnerability report on purpose: ignore
// rules that a team writes down with a reason and an expiry date, and OpenVEX
// documents in which a supplier states that a product is not affected by, or has
// fixed, a vulnerability.
//
// [Apply] moves what they match from Report.Findings to Report.Suppressed, so the
// gate's FailOn no longer counts them. VEX is applied to the report itself, before
// any gate, so a not_affected statement takes effect whatever fail-on threshold is
// set (grype applies it after its fail-on check: anchore/grype#1639).
package suppress

import (
	"time"

	"github.com/shipkit/shipkit/scan/report"
)

// Filter decides whether a finding of a report about target is suppressed at time
// now, and why.
type Filter interface {
	Suppresses(target string, f report.Finding, now time.Time) (by, reason string, ok bool)
}

// Apply returns a copy of r in which every finding that one of the filters
// suppresses at time now is moved to Suppressed (the first filter that matches
// names itself). r is not modified.
func Apply(r *report.Report, now time.Time, filters ...Filter) *report.Report {
	if r == nil {
		return nil
	}
	out := *r
	out.Findings = make([]report.Finding, 0, len(r.Findings))
	out.Suppressed = append([]report.Suppression(nil), r.Suppressed...)
	for _, f := range r.Findings {
		suppressed := false
		for _, flt := range filters {
			if flt == nil {
				continue
			}
			if by, reason, ok := flt.Suppresses(r.Target, f, now); ok {
				out.Suppressed = append(out.Suppressed, report.Suppression{Finding: f, By: by, Reason: reason})
				suppressed = true
				break
			}
		}
		if !suppressed {
			out.Findings = append(out.Findings, f)
		}
	}
	return &out
}
