package sign_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/sign"
)

// A denial carries every reason, and callers branch on it with errors.Is and the
// reasons' codes.
func ExampleDeniedError() {
	d, _ := name.NewDigest("registry.example.com/app@sha256:" + fmt.Sprintf("%064d", 0))
	var err error = &sign.DeniedError{Digest: d, Reasons: []sign.Reason{
		{Code: sign.ReasonUnsigned, Message: "no signature"},
		{Code: sign.ReasonMissingAttestation, Message: "no attestation of predicate type " + sign.PredicateSLSAProvenance + " by a trusted signer"},
	}}
	fmt.Println(errors.Is(err, sign.ErrDenied))
	var denied *sign.DeniedError
	if errors.As(err, &denied) {
		fmt.Println(denied.Has(sign.ReasonUnsigned))
	}
	fmt.Println(err)
	// Output:
	// true
	// true
	// registry.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000 denied by policy: 2 reasons:
	//   no signature
	//   no attestation of predicate type https://slsa.dev/provenance/v1 by a trusted signer
}

// Tags are refused where a digest is required: resolve the tag first.
func ExampleParseDigest() {
	_, err := sign.ParseDigest("registry.example.com/app:1.0")
	fmt.Println(errors.Is(err, sign.ErrNotDigest))
	d, _ := sign.ParseDigest("registry.example.com/app@sha256:" + fmt.Sprintf("%064d", 0))
	fmt.Println(d.Context())
	// Output:
	// true
	// registry.example.com/app
}

// Provenance comes from what the build stage knows: the annotations it writes on an
// image index, plus the builder and the times.
func ExampleProvenance() {
	p := sign.ProvenanceFromAnnotations(map[string]string{
		"org.opencontainers.image.source":      "https://github.com/example/app.git",
		"org.opencontainers.image.revision":    "9f2c1e0",
		"org.opencontainers.image.base.name":   "gcr.io/distroless/static:nonroot",
		"org.opencontainers.image.base.digest": "sha256:" + fmt.Sprintf("%064d", 1),
	})
	p.BuilderID = "https://github.com/example/app/.github/workflows/release.yml"
	p.StartedOn = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pred, err := p.Predicate()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(pred.Type)
	atts := []sign.Attestation{{PredicateType: pred.Type, Predicate: pred.Body, Signer: "release"}}
	fmt.Println(sign.ProvenanceFrom("https://github.com/example/app").Check(atts) == nil)
	fmt.Println(sign.ProvenanceFrom("https://github.com/evil/app").Check(atts))
	// Output:
	// https://slsa.dev/provenance/v1
	// true
	// [SLSA provenance signed by release names source https://github.com/example/app.git, want https://github.com/evil/app]
}

// A vulnerability report becomes cosign's vuln predicate, and the vulnerability
// rule reads it back: findings at or above the threshold deny, and so does a report
// older than the maximum report age (a week unless the rule says otherwise).
func ExampleVulnRule() {
	scanned := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	r := &report.Report{
		Target:  "registry.example.com/app@sha256:…",
		Subject: "sha256:" + fmt.Sprintf("%064d", 2), // the platform image that was scanned
		Findings: []report.Finding{
			{ID: "CVE-2026-0001", Package: "openssl", Version: "3.0.1", Severity: report.High},
		},
		Tool: &report.Tool{Name: "grype", URI: "pkg:golang/github.com/anchore/grype@v0.121.2", FinishedOn: scanned},
	}
	pred, err := sign.VulnPredicate(r)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(pred.Type, pred.Subject.Hex[60:])
	atts := []sign.Attestation{{PredicateType: pred.Type, Predicate: pred.Body, Signer: "ci"}}
	nextDay := func() time.Time { return scanned.Add(24 * time.Hour) }
	fmt.Println(sign.VulnRule{FailOn: report.Critical, Now: nextDay}.Check(atts) == nil)
	fmt.Println(sign.VulnRule{FailOn: report.High, Now: nextDay}.Check(atts))
	nextMonth := func() time.Time { return scanned.Add(30 * 24 * time.Hour) }
	fmt.Println(sign.VulnRule{FailOn: report.Critical, Now: nextMonth}.Check(atts))
	// Output:
	// https://cosign.sigstore.dev/attestation/vuln/v1 0002
	// true
	// [vulnerability report signed by ci (shipkit report, scan of 2026-03-02T10:00:00Z): 1 finding(s) at or above High: CVE-2026-0001 (High, openssl@3.0.1)]
	// [newest vulnerability report signed by ci is from 2026-03-02T10:00:00Z, 720h0m0s ago, older than the maximum report age 168h0m0s: scan and attest the image again]
}
