package suppress_test

import (
	"fmt"
	"time"

	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/scan/suppress"
)

// Ignore rules with a reason and an expiry, and a VEX statement from the supplier,
// take findings out of a report before the gate reads it.
func ExampleApply() {
	r := &report.Report{Target: "sha256:1111111111111111111111111111111111111111111111111111111111111111", Findings: []report.Finding{
		{ID: "CVE-2023-4911", Package: "libc6", Version: "2.36-9+deb12u2", Type: "deb", Severity: report.High},
		{ID: "GHSA-69ch-w2m2-3vjp", Aliases: []string{"CVE-2022-32149"}, Package: "golang.org/x/text", Version: "v0.3.6",
			Type: "go-module", PURL: "pkg:golang/golang.org/x/text@v0.3.6", Severity: report.High},
	}}
	rules, err := suppress.ParseRules([]byte(`
ignore:
  - id: CVE-2023-4911
    reason: ld.so is not setuid in this image
    expires: 2026-01-31
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	vex, err := suppress.ParseOpenVEX([]byte(`{
	  "@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/1",
	  "statements": [{"vulnerability": {"name": "CVE-2022-32149"},
	    "products": [{"@id": "pkg:golang/golang.org/x/text@v0.3.6"}],
	    "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"}]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, now := range []time.Time{time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)} {
		out := suppress.Apply(r, now, vex, rules)
		fmt.Println(now.Format(time.DateOnly), "findings:", len(out.Findings), "gate:", out.FailOn(report.High) == nil)
		for _, s := range out.Suppressed {
			fmt.Printf("  %s suppressed by %s (%s)\n", s.Finding.ID, s.By, s.Reason)
		}
	}
	// Output:
	// 2026-01-15 findings: 0 gate: true
	//   CVE-2023-4911 suppressed by ignore rule 1 (ld.so is not setuid in this image)
	//   GHSA-69ch-w2m2-3vjp suppressed by vex https://example.com/vex/1 (not_affected: vulnerable_code_not_in_execute_path)
	// 2026-02-01 findings: 1 gate: false
	//   GHSA-69ch-w2m2-3vjp suppressed by vex https://example.com/vex/1 (not_affected: vulnerable_code_not_in_execute_path)
}
