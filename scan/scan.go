// Package scan answers what is inside an image and whether it is safe to ship:
// a software bill of materials (SBOM), the known vulnerabilities of its packages,
// and the security of the Kubernetes manifests that will run it.
//
// The two steps are interfaces so either can be swapped: a [Cataloger] reads an image
// value in memory into an [SBOM] (no Docker daemon, no second pull) and a [Scanner]
// matches an SBOM against a vulnerability database into a [Report]. The report types
// live in package report, which a gate can import without linking any scanner.
//
// The implementations live in subpackages, so this package links neither:
//   - scan/sbom: a syft [Cataloger] for image values, image indexes (one SBOM per
//     platform), OCI layouts and registry references; SPDX 2.3, CycloneDX 1.6 and
//     syft JSON writers.
//   - scan/vuln: vuln.DB, a grype [Scanner] over a v6 database on local disk, loaded
//     once, checked for schema and age, safe for concurrent scans.
//   - scan/vulndb: writes a grype v6 database from OSV records, for air-gapped
//     users and tests; nothing is downloaded.
//   - scan/suppress: ignore rules with expiry dates and OpenVEX documents.
//   - scan/report: the report, its gate (FailOn), its JSON, SARIF 2.1.0 and table
//     writers, and Decode for shipkit, grype and Trivy reports (package sign makes
//     and reads the cosign vulnerability predicate).
//   - scan/policy: Kubernetes manifests against the Pod Security Standards (the API
//     server's own evaluator) and hardening rules; links no scanner.
//
// scan/sbom and scan/vuln report each step (catalog <platform>, load the database,
// scan <digest>) to the observe.Observer passed with their WithObserver options.
package scan

import (
	"context"

	"github.com/anchore/syft/syft/sbom"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shipkit/shipkit/scan/report"
)

// Cataloger reads the packages of an image into an SBOM.
type Cataloger interface {
	Catalog(ctx context.Context, img v1.Image) (*SBOM, error)
}

// Scanner matches the packages of an SBOM against known vulnerabilities.
type Scanner interface {
	Scan(ctx context.Context, s *SBOM) (*Report, error)
}

// SBOM is the software bill of materials of one image (one platform). It keeps
// syft's model inside, so every format syft writes can be produced from it.
type SBOM struct {
	// Subject is the digest of the image the SBOM describes.
	Subject v1.Hash
	// Platform is the image's platform, when known.
	Platform *v1.Platform

	syft sbom.SBOM
}

// NewSBOM wraps syft's model of the image with the given digest.
func NewSBOM(subject v1.Hash, platform *v1.Platform, s sbom.SBOM) *SBOM {
	return &SBOM{Subject: subject, Platform: platform, syft: s}
}

// Syft returns syft's model of the SBOM. Callers must not modify it.
func (s *SBOM) Syft() *sbom.SBOM { return &s.syft }

// Report is the result of a vulnerability scan; see package report.
type Report = report.Report

// Finding is one vulnerability found in one package; see package report.
type Finding = report.Finding

// Severity orders how bad a vulnerability is; see package report.
type Severity = report.Severity
