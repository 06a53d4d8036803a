// Package vulndb writes a grype v6 vulnerability database from advisories you
// bring, with no network: air-gapped users feed it their own OSV records (or any
// feed they turn into [Record] values), and tests get a small database of exactly
// the advisories they need.
//
// [Write] builds the database with grype's own v6 store writer, rehydrates its
// indexes and stamps import metadata exactly as grype does after a download, so
// grype's loader (and scan/vuln, and the grype CLI pointed at the same directory
// with GRYPE_DB_CACHE_DIR) accepts it with checksum and age validation on. [FromOSV]
// reads OSV JSON (https://ossf.github.io/osv-schema/) into records.
//
// For a real grype database archive (from `grype db list`, copied over to an
// air-gapped machine), install it with scan/vuln's Import instead.
package vulndb

import (
	"fmt"
	"strings"

	"github.com/anchore/grype/grype/version"

	"github.com/shipkit/shipkit/scan/report"
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

	// Imports are, for a Go module ("go-module"), the packages of the module that
	// hold the vulnerable code, with their symbols and the platforms they are limited
	// to (OSV's affected[].ecosystem_specific.imports, as golang/vulndb writes it).
	// Empty means the whole module, on every platform.
	Imports []GoImport
}

// GoImport is one package of an affected Go module that holds vulnerable code.
type GoImport struct {
	// Path is the package's import path, e.g. "golang.org/x/text/language".
	Path string

	// Symbols are the vulnerable functions and methods of the package, e.g. "Parse"
	// or "Decoder.Decode"; empty means the whole package.
	Symbols []string

	// GOOS and GOARCH limit the vulnerability to binaries built for these operating
	// systems and architectures (Go's names: "windows", "ppc64le"); empty means any.
	GOOS   []string
	GOARCH []string
}

// AppliesTo says whether the vulnerable code of r is in a binary built for
// goos/goarch at all: true when r names no imports, or when one of its imports
// is not limited to other operating systems or architectures. An empty goos or
// goarch (unknown) matches every limit, so an unknown platform never hides an
// advisory.
func (r Record) AppliesTo(goos, goarch string) bool {
	if len(r.Imports) == 0 {
		return true
	}
	for _, imp := range r.Imports {
		if imp.appliesTo(goos, goarch) {
			return true
		}
	}
	return false
}

func (imp GoImport) appliesTo(goos, goarch string) bool {
	in := func(list []string, v string) bool {
		if len(list) == 0 || v == "" {
			return true
		}
		for _, x := range list {
			if strings.EqualFold(x, v) {
				return true
			}
		}
		return false
	}
	return in(imp.GOOS, goos) && in(imp.GOARCH, goarch)
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

// normalizeSeverity returns s in grype's spelling ("critical" … "negligible", ""
// for unknown). The words are scan/report's (report.ParseSeverity: "moderate" is
// medium), so a database and the reports read from it agree.
func normalizeSeverity(s string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return "", nil
	}
	sev, err := report.ParseSeverity(s)
	if err != nil {
		return "", err
	}
	if sev == report.Unknown {
		return "", nil
	}
	return strings.ToLower(sev.String()), nil
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
	for i, imp := range r.Imports {
		if imp.Path == "" {
			return fmt.Errorf("record %s (%s): imports[%d] has no path", r.ID, r.Package, i)
		}
	}
	for _, rg := range r.Ranges {
		if _, err := version.GetConstraint(rg.constraint(), f); err != nil {
			return fmt.Errorf("record %s (%s): version range %q: %w", r.ID, r.Package, rg.constraint(), err)
		}
	}
	return nil
}
