// Package report holds the vulnerability report that shipkit's scan stage produces
// and its deploy gate reads. It depends on nothing but the standard library, so a
// program that only gates on a report does not link the scanners.
package report

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Severity is how bad a vulnerability is, ordered: Unknown < Negligible < Low <
// Medium < High < Critical.
type Severity int

// The severities, from least to most severe.
const (
	Unknown Severity = iota
	Negligible
	Low
	Medium
	High
	Critical
)

var severityNames = [...]string{"Unknown", "Negligible", "Low", "Medium", "High", "Critical"}

// String returns the severity's name, e.g. "High".
func (s Severity) String() string {
	if s < Unknown || s > Critical {
		return fmt.Sprintf("Severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity reads a severity name, ignoring case ("high", "CRITICAL").
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(n, strings.TrimSpace(name)) {
			return Severity(i), nil
		}
	}
	return Unknown, fmt.Errorf("unknown severity %q (want one of %s)", name, strings.Join(severityNames[:], ", "))
}

// MarshalText writes the severity's name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// CVSS is one CVSS score of a vulnerability.
type CVSS struct {
	Version string  `json:"version"`
	Vector  string  `json:"vector"`
	Score   float64 `json:"score"`
}

// The fix states of a finding, as grype names them.
const (
	FixStateFixed    = "fixed"     // a fixed version exists (see FixedIn)
	FixStateNotFixed = "not-fixed" // no fix yet
	FixStateWontFix  = "wont-fix"  // the distro will not fix it
	FixStateUnknown  = "unknown"
)

// Finding is one vulnerability found in one package.
type Finding struct {
	// ID is the advisory's identifier, e.g. "GHSA-69ch-w2m2-3vjp" or "CVE-2023-4911".
	ID string `json:"id"`
	// Aliases are other identifiers of the same vulnerability, e.g. its CVE.
	Aliases []string `json:"aliases,omitempty"`
	// Package, Version and Type name the affected package as the SBOM has it
	// (Type is syft's package type, e.g. "go-module", "deb").
	Package string `json:"package"`
	Version string `json:"version"`
	Type    string `json:"type"`
	// PURL is the package URL of the affected package, when known.
	PURL string `json:"purl,omitempty"`
	// Locations are the paths in the image where the package was found.
	Locations []string `json:"locations,omitempty"`
	// FixedIn lists the versions that fix the vulnerability; FixState says whether
	// a fix exists at all (FixStateFixed, FixStateNotFixed, FixStateWontFix, FixStateUnknown).
	FixedIn  []string `json:"fixedIn,omitempty"`
	FixState string   `json:"fixState,omitempty"`
	Severity Severity `json:"severity"`
	CVSS     []CVSS   `json:"cvss,omitempty"`
	// DataSource is the advisory's primary URL; URLs are further references.
	DataSource  string   `json:"dataSource,omitempty"`
	URLs        []string `json:"urls,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Names returns the finding's ID followed by its aliases.
func (f Finding) Names() []string { return append([]string{f.ID}, f.Aliases...) }

// MaxCVSS returns the highest CVSS base score of the finding, 0 when it has none.
func (f Finding) MaxCVSS() float64 {
	max := 0.0
	for _, c := range f.CVSS {
		if c.Score > max {
			max = c.Score
		}
	}
	return max
}

// Suppression is a finding that a VEX statement or an ignore rule took out of a
// report, and why.
type Suppression struct {
	Finding Finding `json:"finding"`
	// By names what suppressed it, e.g. "vex https://example.com/vex/1" or
	// "ignore rule 2".
	By string `json:"by"`
	// Reason is the statement's status and justification or the rule's reason.
	Reason string `json:"reason,omitempty"`
}

// Scanner describes the scanner and database that produced a report.
type Scanner struct {
	// Name and Version name the scanner, e.g. "grype" and "v0.121.2".
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	// DBSchema is the vulnerability database's schema version, e.g. "v6.1.10".
	DBSchema string `json:"dbSchema,omitempty"`
	// DBBuilt is when the vulnerability database was built.
	DBBuilt time.Time `json:"dbBuilt,omitzero"`
	// StartedOn and FinishedOn are when the scan ran.
	StartedOn  time.Time `json:"startedOn,omitzero"`
	FinishedOn time.Time `json:"finishedOn,omitzero"`
}

// Report is the result of a vulnerability scan of one artifact.
type Report struct {
	// Target names what was scanned, e.g. an image digest.
	Target   string    `json:"target"`
	Findings []Finding `json:"findings"`
	// Suppressed are the findings that VEX statements or ignore rules took out;
	// they no longer count for [Report.Max] and [Report.FailOn].
	Suppressed []Suppression `json:"suppressed,omitempty"`
	// Scanner says what produced the report, when known.
	Scanner *Scanner `json:"scanner,omitempty"`
}

// Max returns the highest severity among the findings, Unknown when there are none.
func (r *Report) Max() Severity {
	max := Unknown
	for _, f := range r.Findings {
		if f.Severity > max {
			max = f.Severity
		}
	}
	return max
}

// ErrSeverity is what [Report.FailOn] returns when a finding is at or above the
// threshold; errors.Is(err, ErrSeverity) tells it apart.
var ErrSeverity = errors.New("vulnerabilities at or above the severity threshold")

// SeverityError lists the findings at or above a threshold.
type SeverityError struct {
	Threshold Severity
	Findings  []Finding
}

// Error names every finding at or above the threshold.
func (e *SeverityError) Error() string {
	ids := make([]string, 0, len(e.Findings))
	for _, f := range e.Findings {
		ids = append(ids, fmt.Sprintf("%s (%s, %s@%s)", f.ID, f.Severity, f.Package, f.Version))
	}
	return fmt.Sprintf("%d finding(s) at or above %s: %s", len(e.Findings), e.Threshold, strings.Join(ids, ", "))
}

// Unwrap makes errors.Is(err, ErrSeverity) true.
func (e *SeverityError) Unwrap() error { return ErrSeverity }

// FailOn answers the gate: nil when no finding is at or above threshold, else a
// *SeverityError listing those findings, most severe first.
func (r *Report) FailOn(threshold Severity) error {
	var hit []Finding
	for _, f := range r.Findings {
		if f.Severity >= threshold {
			hit = append(hit, f)
		}
	}
	if len(hit) == 0 {
		return nil
	}
	sort.SliceStable(hit, func(i, j int) bool { return hit[i].Severity > hit[j].Severity })
	return &SeverityError{Threshold: threshold, Findings: hit}
}
