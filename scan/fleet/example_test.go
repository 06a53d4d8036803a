package fleet_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/shipkit/shipkit/deploy"
	deployfleet "github.com/shipkit/shipkit/deploy/fleet"
	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/scan/fleet"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/sign"
)

// attested stands in for a sign/cosign Verifier: every image verifies with this
// SPDX SBOM attested.
type attested struct{}

func (attested) Verify(_ context.Context, d name.Digest) (*sign.Verified, error) {
	doc := `{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"app",
	"documentNamespace":"https://example.com/app","creationInfo":{"created":"2026-01-01T00:00:00Z","creators":["Tool: example"]},
	"packages":[{"name":"golang.org/x/text","SPDXID":"SPDXRef-Package-text","versionInfo":"v0.3.6","downloadLocation":"NOASSERTION",
	"externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:golang/golang.org/x/text@v0.3.6"}]}]}`
	return &sign.Verified{Digest: d, Signers: []string{"ci"},
		Attestations: []sign.Attestation{{PredicateType: sign.PredicateSPDX, Predicate: []byte(doc), Signer: "ci"}}}, nil
}

// oneAdvisory stands in for a scan/vuln DB.
type oneAdvisory struct{}

func (oneAdvisory) Scan(_ context.Context, s *scan.SBOM) (*scan.Report, error) {
	r := &scan.Report{Target: s.Subject.String()}
	for p := range s.Syft().Artifacts.Packages.Enumerate() {
		if p.Name == "golang.org/x/text" && p.Version == "v0.3.6" {
			r.Findings = append(r.Findings, report.Finding{ID: "GHSA-69ch-w2m2-3vjp", Package: p.Name, Version: p.Version,
				Type: "go-module", FixedIn: []string{"0.3.8"}, Severity: report.High})
		}
	}
	return r, nil
}

// Re-check a fleet's images from their SBOM attestations and print the report.
// A program passes a cosign.Verifier and a vuln.DB, and the inventory
// deploy/fleet.TakeInventory took.
func ExampleRescan() {
	inv := &deployfleet.Inventory{Images: []deployfleet.Image{{
		Digest: "registry.example/shop/web@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Uses: []deployfleet.Use{{Cluster: "prod-eu", Workload: deploy.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: "shop", Name: "web"},
			Container: "web", Kind: deploy.ContainerImage, Running: true, Pods: 3}},
	}}}
	rep, err := fleet.Rescan(context.Background(), inv, fleet.Options{Verifier: attested{}, Scanner: oneAdvisory{},
		Now: func() time.Time { return time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC) }})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = rep.WriteTable(os.Stdout)
	fmt.Println(rep.FailOn(report.High) != nil)
	// Output:
	// ADVISORY             SEVERITY  PACKAGE            VERSION  FIXED IN  IMAGES  WORKLOADS
	// GHSA-69ch-w2m2-3vjp  High      golang.org/x/text  v0.3.6   0.3.8     1       prod-eu/shop/Deployment/web
	// true
}
