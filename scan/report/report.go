// Package report holds the vulnerability report that shipkit's scan stage produces
// and its deploy gate reads. It depends on nothing but the standard library, so a
// program that only gates on a report does not link the scanners.
package report

import (
	"errors"
	"fmt"
	"sort"
	"strings"
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

// Finding is one vulnerability found in one package.
type Finding struct {
	ID         string   `json:"id"`
	Aliases    []string `json:"aliases,omitempty"`
	Package    string   `json:"package"`
	Version    string   `json:"version"`
	Type       string   `json:"type"`
	FixedIn    []string `json:"fixedIn,omitempty"`
	Severity   Severity `json:"severity"`
	CVSS       []CVSS   `json:"cvss,omitempty"`
	DataSource string   `json:"dataSource,omitempty"`
}

// Report is the result of a vulnerability scan of one artifact.
type Report struct {
	// Target names what was scanned, e.g. an image digest.
	Target   string    `json:"target"`
	Findings []Finding `json:"findings"`
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
