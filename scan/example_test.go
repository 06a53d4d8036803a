package scan_test

import (
	"fmt"

	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/scan/report"
)

// The gate question: does a report hold anything at or above a severity?
func ExampleReport() {
	r := &scan.Report{Target: "registry.example.com/app@sha256:…", Findings: []scan.Finding{
		{ID: "GHSA-69ch-w2m2-3vjp", Package: "golang.org/x/text", Version: "v0.3.7", Severity: report.High},
	}}
	fmt.Println(r.Max())
	fmt.Println(r.FailOn(report.Critical) == nil)
	// Output:
	// High
	// true
}
