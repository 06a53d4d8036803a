package gate

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/sign"
)

// vulnReasons judges the newest verified vulnerability report (cosign's vuln
// predicate, whose scanner.result is a shipkit report) of one image against the
// severity limit; it returns the code and message of the denial, or "" when the
// report passes.
func vulnReasons(atts []sign.Attestation, limit report.Severity) (deploy.ReasonCode, string) {
	var (
		newest     *report.CosignVuln
		signer     string
		unreadable []string
	)
	for _, a := range atts {
		if a.PredicateType != sign.PredicateVuln {
			continue
		}
		var v report.CosignVuln
		if err := json.Unmarshal(a.Predicate, &v); err != nil {
			unreadable = append(unreadable, fmt.Sprintf("signed by %s: %v", a.Signer, err))
			continue
		}
		if newest == nil || v.Metadata.ScanFinishedOn.After(newest.Metadata.ScanFinishedOn) {
			newest, signer = &v, a.Signer
		}
	}
	if newest == nil {
		if len(unreadable) > 0 {
			return deploy.ReasonNoVulnReport, "vulnerability report cannot be read: " + strings.Join(unreadable, "; ")
		}
		return deploy.ReasonNoVulnReport, fmt.Sprintf("no verified vulnerability report (%s) to check for findings at or above %s", sign.PredicateVuln, limit)
	}
	var r report.Report
	if err := json.Unmarshal(newest.Scanner.Result, &r); err != nil {
		return deploy.ReasonNoVulnReport, fmt.Sprintf("vulnerability report signed by %s (scan of %s) holds no readable shipkit report: %v",
			signer, newest.Metadata.ScanFinishedOn.Format(time.RFC3339), err)
	}
	if err := r.FailOn(limit); err != nil {
		return deploy.ReasonVulnerable, fmt.Sprintf("vulnerability report signed by %s (scan of %s): %v",
			signer, newest.Metadata.ScanFinishedOn.Format(time.RFC3339), err)
	}
	return "", ""
}
