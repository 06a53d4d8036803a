package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The part of Trivy's JSON report (pkg/types: Report, Result,
// DetectedVulnerability) that a report needs.
type (
	trivyDoc struct {
		SchemaVersion int       `json:"SchemaVersion"`
		CreatedAt     time.Time `json:"CreatedAt"`
		ArtifactName  string    `json:"ArtifactName"`
		Results       []struct {
			Target          string      `json:"Target"`
			Class           string      `json:"Class"`
			Type            string      `json:"Type"`
			Vulnerabilities []trivyVuln `json:"Vulnerabilities"`
		} `json:"Results"`
		Trivy struct {
			Version string `json:"Version"`
		} `json:"Trivy"`
	}
	trivyVuln struct {
		VulnerabilityID string   `json:"VulnerabilityID"`
		VendorIDs       []string `json:"VendorIDs"`
		PkgName         string   `json:"PkgName"`
		PkgPath         string   `json:"PkgPath"`
		PkgIdentifier   struct {
			PURL string `json:"PURL"`
		} `json:"PkgIdentifier"`
		InstalledVersion string   `json:"InstalledVersion"`
		FixedVersion     string   `json:"FixedVersion"`
		Status           string   `json:"Status"`
		PrimaryURL       string   `json:"PrimaryURL"`
		Description      string   `json:"Description"`
		Severity         string   `json:"Severity"`
		References       []string `json:"References"`
		CVSS             map[string]struct {
			V3Vector string  `json:"V3Vector"`
			V3Score  float64 `json:"V3Score"`
		} `json:"CVSS"`
	}
)

// trivySchema is the schema version of the Trivy JSON reports Decode reads (the
// only one Trivy has written since v0.20).
const trivySchema = 2

func decodeTrivy(b []byte, top map[string]json.RawMessage) (*Report, error) {
	if err := need(FormatTrivy, top, "SchemaVersion", "ArtifactName"); err != nil {
		return nil, err
	}
	// Trivy leaves Results out when it found nothing to scan (no OS, no language
	// packages): that says nothing about the image, so it is not a clean report.
	if err := need(FormatTrivy, top, "Results"); err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			de.Problem += " (Trivy found nothing it could scan, or the report was cut)"
		}
		return nil, err
	}
	var doc trivyDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, &DecodeError{Format: FormatTrivy, Problem: "does not decode", Err: err}
	}
	if doc.SchemaVersion != trivySchema {
		return nil, &DecodeError{Format: FormatTrivy, Problem: fmt.Sprintf("SchemaVersion %d, want %d", doc.SchemaVersion, trivySchema)}
	}
	r := &Report{Target: doc.ArtifactName, Tool: &Tool{Name: "trivy", Version: doc.Trivy.Version, FinishedOn: doc.CreatedAt}}
	if r.Target == "" {
		r.Target = "unknown"
	}
	for i, res := range doc.Results {
		for j, v := range res.Vulnerabilities {
			f, err := v.finding(res.Type)
			if err != nil {
				return nil, &DecodeError{Format: FormatTrivy, Problem: fmt.Sprintf("result %d, vulnerability %d: %s", i+1, j+1, err)}
			}
			r.Findings = append(r.Findings, f)
		}
	}
	return r, nil
}

func (v trivyVuln) finding(pkgType string) (Finding, error) {
	if v.VulnerabilityID == "" || v.PkgName == "" {
		return Finding{}, errors.New("no VulnerabilityID or no PkgName")
	}
	sev, err := ParseSeverity(v.Severity)
	if err != nil {
		return Finding{}, errors.New("Severity is not one of UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL")
	}
	f := Finding{
		ID: v.VulnerabilityID, Package: v.PkgName, Version: v.InstalledVersion, Type: pkgType,
		PURL: v.PkgIdentifier.PURL, Severity: sev, DataSource: v.PrimaryURL,
		URLs: slices.Clone(v.References), Description: v.Description,
	}
	for _, id := range v.VendorIDs {
		if id != "" && id != f.ID && !slices.Contains(f.Aliases, id) {
			f.Aliases = append(f.Aliases, id)
		}
	}
	if v.PkgPath != "" {
		f.Locations = []string{v.PkgPath}
	}
	for fix := range strings.SplitSeq(v.FixedVersion, ",") {
		if fix = strings.TrimSpace(fix); fix != "" {
			f.FixedIn = append(f.FixedIn, fix)
		}
	}
	switch {
	case len(f.FixedIn) > 0:
		f.FixState = FixStateFixed
	case v.Status == "will_not_fix" || v.Status == "end_of_life":
		f.FixState = FixStateWontFix
	case v.Status == "affected" || v.Status == "fix_deferred":
		f.FixState = FixStateNotFixed
	default:
		f.FixState = FixStateUnknown
	}
	// Trivy keys CVSS by source (nvd, ghsa, redhat, …); keep them in a stable order.
	for _, src := range slices.Sorted(maps.Keys(v.CVSS)) {
		if c := v.CVSS[src]; c.V3Vector != "" {
			f.CVSS = append(f.CVSS, CVSS{Version: cvssVersion(c.V3Vector), Vector: c.V3Vector, Score: c.V3Score})
		}
	}
	return f, nil
}

// cvssVersion reads the version from a CVSS v3 vector ("CVSS:3.1/…").
func cvssVersion(vector string) string {
	v, _, _ := strings.Cut(strings.TrimPrefix(vector, "CVSS:"), "/")
	return v
}
