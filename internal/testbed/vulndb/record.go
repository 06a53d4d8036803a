// Package vulndb writes a small, offline grype v6 vulnerability database for tests.
//
// A test describes the advisories it needs as [Record] values (or parses them from OSV
// JSON with [ParseOSV]), and [Write] turns them into a database directory that grype's
// own loader (grype.LoadVulnerabilityDB) accepts with update checks off and checksum and
// age validation on. Nothing is downloaded: the database is built with grype's own v6
// store writer, hydrated and stamped with import metadata exactly as grype does after a
// download.
//
// [Fixtures] returns a default set of advisories for golang.org/x/text and for glibc on
// Debian 12 that shipkit's scan tests can rely on.
package vulndb

import (
	"fmt"
	"strings"

	"github.com/anchore/grype/grype/version"
)

// Record is one advisory as it applies to one package. An advisory that affects several
// packages is several records with the same ID.
type Record struct {
	// ID is the advisory identifier, e.g. "GHSA-69ch-w2m2-3vjp" or "CVE-2023-4911".
	ID string

	// Aliases are other identifiers of the same vulnerability, e.g. "CVE-2022-32149".
	Aliases []string

	// Type is the syft package type the advisory applies to, e.g. "go-module", "npm",
	// "python", "java-archive", "deb", "rpm" or "apk". It selects grype's version format.
	Type string

	// Distro is "name:version" for operating system packages, e.g. "debian:12" or
	// "alpine:3.18"; empty for language ecosystems.
	Distro string

	// Package is the package name; for Debian and Ubuntu the source package name
	// (grype matches binary packages such as libc6 through their source, glibc).
	Package string

	// Ranges are the affected version ranges; at least one is required.
	Ranges []Range

	// Severity is one of "critical", "high", "medium", "low", "negligible" or empty
	// (unknown); case is ignored and "moderate" is read as "medium".
	Severity string

	// CVSS are CVSS assessments of the vulnerability. grype derives scores from the
	// vectors, so no score is stored.
	CVSS []CVSS

	// Description is a one-line summary of the vulnerability.
	Description string

	// URLs are references; the first one is the record's data source in grype's output.
	URLs []string
}

// Range is one affected version range and the version that fixes it.
type Range struct {
	// Vulnerable is a grype version constraint, e.g. "< 0.3.8" or ">= 1.0.0, < 1.2.0";
	// several ranges may be joined with "||". When empty it is "< FixedIn", and with
	// FixedIn also empty every version is affected.
	Vulnerable string

	// FixedIn is the first version that is no longer affected; empty when no fix exists.
	FixedIn string
}

// CVSS is one CVSS assessment.
type CVSS struct {
	// Version is the CVSS version, e.g. "3.1".
	Version string

	// Vector is the full vector string, e.g. "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H".
	Vector string
}

// constraint returns the grype constraint of r.
func (r Range) constraint() string {
	if r.Vulnerable == "" && r.FixedIn != "" {
		return "< " + r.FixedIn
	}
	return r.Vulnerable
}

// severities are the severity names grype understands, keyed by the spellings accepted.
var severities = map[string]string{
	"": "", "unknown": "", "critical": "critical", "high": "high",
	"medium": "medium", "moderate": "medium", "low": "low", "negligible": "negligible",
}

// normalizeSeverity returns s in grype's spelling.
func normalizeSeverity(s string) (string, error) {
	n, ok := severities[strings.ToLower(strings.TrimSpace(s))]
	if !ok {
		return "", fmt.Errorf("unknown severity %q", s)
	}
	return n, nil
}

// versionFormat returns the grype version format for a syft package type.
func versionFormat(pkgType string) (version.Format, error) {
	f := version.ParseFormat(pkgType)
	if f == version.UnknownFormat {
		return f, fmt.Errorf("package type %q has no grype version format", pkgType)
	}
	return f, nil
}

// validate reports the first thing wrong with r.
func (r Record) validate() error {
	switch {
	case r.ID == "":
		return fmt.Errorf("record has no ID")
	case r.Package == "":
		return fmt.Errorf("record %s has no package", r.ID)
	case len(r.Ranges) == 0:
		return fmt.Errorf("record %s (%s) has no version range", r.ID, r.Package)
	}
	if _, err := normalizeSeverity(r.Severity); err != nil {
		return fmt.Errorf("record %s: %w", r.ID, err)
	}
	f, err := versionFormat(r.Type)
	if err != nil {
		return fmt.Errorf("record %s (%s): %w", r.ID, r.Package, err)
	}
	if r.Distro != "" {
		if _, err := parseDistro(r.Distro); err != nil {
			return fmt.Errorf("record %s (%s): %w", r.ID, r.Package, err)
		}
	}
	for _, rg := range r.Ranges {
		if _, err := version.GetConstraint(rg.constraint(), f); err != nil {
			return fmt.Errorf("record %s (%s): version range %q: %w", r.ID, r.Package, rg.constraint(), err)
		}
	}
	return nil
}

// Fixtures returns the default advisories: two GitHub advisories for golang.org/x/text
// (GHSA-69ch-w2m2-3vjp, fixed in 0.3.8, and GHSA-ppp9-7jff-5vj2, fixed in 0.3.7) and
// CVE-2023-4911 for the glibc source package on Debian 12 (fixed in 2.36-9+deb12u3).
// The two GitHub advisories are also in testdata/ as OSV JSON. Each call returns new
// values.
func Fixtures() []Record {
	const availabilityVector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"
	return []Record{
		{
			ID:          "GHSA-69ch-w2m2-3vjp",
			Aliases:     []string{"CVE-2022-32149"},
			Type:        "go-module",
			Package:     "golang.org/x/text",
			Ranges:      []Range{{Vulnerable: "< 0.3.8", FixedIn: "0.3.8"}},
			Severity:    "high",
			CVSS:        []CVSS{{Version: "3.1", Vector: availabilityVector}},
			Description: "golang.org/x/text/language Denial of service via crafted Accept-Language header",
			URLs: []string{
				"https://github.com/advisories/GHSA-69ch-w2m2-3vjp",
				"https://nvd.nist.gov/vuln/detail/CVE-2022-32149",
				"https://pkg.go.dev/vuln/GO-2022-1059",
			},
		},
		{
			ID:          "GHSA-ppp9-7jff-5vj2",
			Aliases:     []string{"CVE-2021-38561"},
			Type:        "go-module",
			Package:     "golang.org/x/text",
			Ranges:      []Range{{Vulnerable: "< 0.3.7", FixedIn: "0.3.7"}},
			Severity:    "high",
			CVSS:        []CVSS{{Version: "3.1", Vector: availabilityVector}},
			Description: "golang.org/x/text/language Out-of-bounds Read vulnerability",
			URLs: []string{
				"https://github.com/advisories/GHSA-ppp9-7jff-5vj2",
				"https://nvd.nist.gov/vuln/detail/CVE-2021-38561",
				"https://pkg.go.dev/vuln/GO-2021-0113",
			},
		},
		{
			ID:          "CVE-2023-4911",
			Type:        "deb",
			Distro:      "debian:12",
			Package:     "glibc",
			Ranges:      []Range{{Vulnerable: "< 2.36-9+deb12u3", FixedIn: "2.36-9+deb12u3"}},
			Severity:    "high",
			CVSS:        []CVSS{{Version: "3.1", Vector: "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"}},
			Description: "glibc: buffer overflow in ld.so leading to privilege escalation (Looney Tunables)",
			URLs: []string{
				"https://security-tracker.debian.org/tracker/CVE-2023-4911",
				"https://www.debian.org/security/2023/dsa-5514",
			},
		},
	}
}
