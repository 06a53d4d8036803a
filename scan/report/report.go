// Package report holds the vulnerability report that shipkit's scan stage produces
// and its deploy gate reads: findings with severities, FailOn, the JSON, SARIF and
// table writers, and [Decode], which reads the reports people attest (shipkit's,
// grype's and Trivy's JSON) and refuses what it cannot read with certainty. It
// depends on nothing but the standard library, so a program that only gates on a
// report does not link the scanners. (Package sign writes and reads the report as
// cosign's vulnerability predicate.)
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

// ErrUnknownSeverity is matched (errors.Is) by the *[SeverityNameError] of
// [ParseSeverity] and [ParseThreshold].
var ErrUnknownSeverity = errors.New("unknown severity")

// SeverityNameError says that a name is not a severity, or not one a threshold may
// be.
type SeverityNameError struct {
	// Name is the name as given (at most 40 bytes of it are shown by Error).
	Name string
	// Threshold is set when the name was read as a threshold, which Unknown is not.
	Threshold bool
}

// Error names the word and the accepted ones.
func (e *SeverityNameError) Error() string {
	name := e.Name
	if len(name) > 40 {
		name = name[:40] + "…"
	}
	if e.Threshold {
		return fmt.Sprintf("%q is not a severity threshold (want one of Negligible, Low, Medium, High, Critical; Moderate means Medium)", name)
	}
	return fmt.Sprintf("unknown severity %q (want one of Unknown, Negligible, Low, Medium, High, Critical; Moderate means Medium)", name)
}

// Unwrap makes errors.Is(err, ErrUnknownSeverity) true.
func (e *SeverityNameError) Unwrap() error { return ErrUnknownSeverity }

// ParseSeverity reads a severity name, ignoring case and surrounding space ("high",
// "CRITICAL"). "Moderate" (GitHub's and OSV's word) is Medium, as in scan/vulndb. A
// name it does not know is a *[SeverityNameError].
func ParseSeverity(name string) (Severity, error) {
	n := strings.TrimSpace(name)
	if strings.EqualFold(n, "moderate") {
		return Medium, nil
	}
	for i, sn := range severityNames {
		if strings.EqualFold(sn, n) {
			return Severity(i), nil
		}
	}
	return Unknown, &SeverityNameError{Name: name}
}

// ParseThreshold reads a severity to deny findings at or above, like
// [ParseSeverity] but refusing Unknown: a threshold of Unknown would deny every
// finding and say nothing about how bad they are. Use Negligible for "any finding".
func ParseThreshold(name string) (Severity, error) {
	s, err := ParseSeverity(name)
	if err != nil || !s.IsThreshold() {
		return Unknown, &SeverityNameError{Name: name, Threshold: true}
	}
	return s, nil
}

// IsThreshold reports whether s may be a threshold: Negligible to Critical.
func (s Severity) IsThreshold() bool { return s >= Negligible && s <= Critical }

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

// Tool describes the scanner and database that produced a report. It is what
// cosign's vulnerability predicate records about the scan (scanner.uri, .version,
// .db and metadata.scanStartedOn/scanFinishedOn, see package sign).
type Tool struct {
	// Name and Version name the scanner, e.g. "grype" and "v0.121.2".
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	// URI identifies the scanner as a package URL, e.g.
	// "pkg:golang/github.com/anchore/grype@v0.121.2".
	URI string `json:"uri,omitempty"`
	// DBURI names the vulnerability database, e.g. "grype-db".
	DBURI string `json:"dbURI,omitempty"`
	// DBSchema is the vulnerability database's schema version, e.g. "v6.1.10".
	DBSchema string `json:"dbSchema,omitempty"`
	// DBBuilt is when the vulnerability database was built.
	DBBuilt time.Time `json:"dbBuilt,omitzero"`
	// StartedOn and FinishedOn are when the scan ran. FinishedOn dates the report: a
	// gate judges an image by its newest report and refuses one too old.
	StartedOn  time.Time `json:"startedOn,omitzero"`
	FinishedOn time.Time `json:"finishedOn,omitzero"`
}

// Report is the result of a vulnerability scan of one artifact.
type Report struct {
	// Target names what was scanned, e.g. an image digest.
	Target string `json:"target"`
	// Subject is the digest ("sha256:…") of the image that was scanned, when it is
	// one; a vulnerability attestation of the report is about that image.
	Subject string `json:"subject,omitempty"`
	// Platform is the scanned image's platform ("linux/arm64"), when known.
	Platform string    `json:"platform,omitempty"`
	Findings []Finding `json:"findings"`
	// Suppressed are the findings that VEX statements or ignore rules took out;
	// they no longer count for [Report.Max] and [Report.FailOn].
	Suppressed []Suppression `json:"suppressed,omitempty"`
	// Tool says what produced the report, when known. (Its JSON key is "scanner",
	// as in the reports shipkit wrote before.)
	Tool *Tool `json:"scanner,omitempty"`
	// Format is the format [Decode] read the report from; empty for a report made
	// in memory. It is not written.
	Format Format `json:"-"`
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

// maxListed is how many findings a *SeverityError names before "and N more".
const maxListed = 10

// Error names the findings at or above the threshold, the first ten of them.
func (e *SeverityError) Error() string {
	ids := make([]string, 0, min(len(e.Findings), maxListed+1))
	for i, f := range e.Findings {
		if i == maxListed {
			ids = append(ids, fmt.Sprintf("and %d more", len(e.Findings)-maxListed))
			break
		}
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
