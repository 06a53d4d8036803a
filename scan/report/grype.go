package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// The part of grype's JSON output (grype/presenter/models: Document, Match,
// Vulnerability, VulnerabilityMetadata, Package) that a report needs.
type (
	grypeDoc struct {
		Matches        []grypeMatch `json:"matches"`
		IgnoredMatches []grypeMatch `json:"ignoredMatches"`
		Source         *struct {
			Type   string          `json:"type"`
			Target json.RawMessage `json:"target"`
		} `json:"source"`
		Descriptor struct {
			Name      string `json:"name"`
			Version   string `json:"version"`
			Timestamp string `json:"timestamp"`
		} `json:"descriptor"`
	}
	grypeMatch struct {
		Vulnerability struct {
			grypeMetadata
			Fix struct {
				Versions []string `json:"versions"`
				State    string   `json:"state"`
			} `json:"fix"`
		} `json:"vulnerability"`
		RelatedVulnerabilities []grypeMetadata `json:"relatedVulnerabilities"`
		Artifact               struct {
			Name      string `json:"name"`
			Version   string `json:"version"`
			Type      string `json:"type"`
			PURL      string `json:"purl"`
			Locations []struct {
				Path string `json:"path"`
			} `json:"locations"`
		} `json:"artifact"`
		AppliedIgnoreRules []json.RawMessage `json:"appliedIgnoreRules"`
	}
	grypeMetadata struct {
		ID          string   `json:"id"`
		DataSource  string   `json:"dataSource"`
		Severity    string   `json:"severity"`
		URLs        []string `json:"urls"`
		Description string   `json:"description"`
		CVSS        []struct {
			Version string `json:"version"`
			Vector  string `json:"vector"`
			Metrics struct {
				BaseScore float64 `json:"baseScore"`
			} `json:"metrics"`
		} `json:"cvss"`
	}
)

func decodeGrype(b []byte, top map[string]json.RawMessage) (*Report, error) {
	if err := need(FormatGrype, top, "matches", "descriptor"); err != nil {
		return nil, err
	}
	var doc grypeDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, &DecodeError{Format: FormatGrype, Problem: "does not decode", Err: err}
	}
	if doc.Descriptor.Name == "" {
		return nil, &DecodeError{Format: FormatGrype, Problem: "descriptor names no scanner"}
	}
	r := &Report{Target: grypeTarget(doc), Tool: &Tool{Name: doc.Descriptor.Name, Version: doc.Descriptor.Version}}
	if doc.Descriptor.Timestamp != "" {
		t, err := time.Parse(time.RFC3339Nano, doc.Descriptor.Timestamp)
		if err != nil {
			return nil, &DecodeError{Format: FormatGrype, Problem: "descriptor.timestamp is not an RFC 3339 time"}
		}
		r.Tool.FinishedOn = t
	}
	for i, m := range doc.Matches {
		f, err := m.finding()
		if err != nil {
			return nil, &DecodeError{Format: FormatGrype, Problem: fmt.Sprintf("match %d: %s", i+1, err)}
		}
		r.Findings = append(r.Findings, f)
	}
	for i, m := range doc.IgnoredMatches {
		f, err := m.finding()
		if err != nil {
			return nil, &DecodeError{Format: FormatGrype, Problem: fmt.Sprintf("ignored match %d: %s", i+1, err)}
		}
		r.Suppressed = append(r.Suppressed, Suppression{Finding: f, By: "grype ignore rule"})
	}
	return r, nil
}

// finding reads one match. Its severity is the vulnerability's; grype omits it when
// it has no metadata for the vulnerability, and then the most severe of the related
// vulnerabilities (e.g. the CVE behind a GHSA) counts.
func (m grypeMatch) finding() (Finding, error) {
	v, a := m.Vulnerability, m.Artifact
	if v.ID == "" || a.Name == "" {
		return Finding{}, errors.New("no vulnerability id or no artifact name")
	}
	sev, err := grypeSeverity(v.Severity)
	if err != nil {
		return Finding{}, err
	}
	f := Finding{
		ID: v.ID, Package: a.Name, Version: a.Version, Type: a.Type, PURL: a.PURL,
		FixedIn: slices.Clone(v.Fix.Versions), FixState: v.Fix.State, Severity: sev,
		DataSource: v.DataSource, URLs: slices.Clone(v.URLs), Description: v.Description,
	}
	for _, l := range a.Locations {
		if l.Path != "" && !slices.Contains(f.Locations, l.Path) {
			f.Locations = append(f.Locations, l.Path)
		}
	}
	for _, c := range v.CVSS {
		f.CVSS = append(f.CVSS, CVSS{Version: c.Version, Vector: c.Vector, Score: c.Metrics.BaseScore})
	}
	for _, rel := range m.RelatedVulnerabilities {
		if rel.ID != "" && rel.ID != f.ID && !slices.Contains(f.Aliases, rel.ID) {
			f.Aliases = append(f.Aliases, rel.ID)
		}
		rs, err := grypeSeverity(rel.Severity)
		if err != nil {
			return Finding{}, fmt.Errorf("related vulnerability: %w", err)
		}
		if v.Severity == "" && rs > f.Severity {
			f.Severity = rs
		}
	}
	return f, nil
}

// grypeSeverity reads grype's severity word; grype writes none when it has no
// metadata, which is Unknown.
func grypeSeverity(s string) (Severity, error) {
	if s == "" {
		return Unknown, nil
	}
	sev, err := ParseSeverity(s)
	if err != nil {
		return Unknown, errors.New("severity is not one of Unknown, Negligible, Low, Medium, High, Critical")
	}
	return sev, nil
}

// grypeTarget names what grype scanned: an image's manifest digest or the name the
// user gave, or a directory or file path.
func grypeTarget(doc grypeDoc) string {
	if doc.Source == nil {
		return "unknown"
	}
	var path string
	if json.Unmarshal(doc.Source.Target, &path) == nil && path != "" {
		return path
	}
	var img struct {
		UserInput      string `json:"userInput"`
		ManifestDigest string `json:"manifestDigest"`
	}
	if json.Unmarshal(doc.Source.Target, &img) == nil {
		if img.ManifestDigest != "" {
			return img.ManifestDigest
		}
		if img.UserInput != "" {
			return img.UserInput
		}
	}
	return "unknown"
}
