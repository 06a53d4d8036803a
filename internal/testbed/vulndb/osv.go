package vulndb

import (
	"encoding/json"
	"fmt"
	"strings"

	syftpkg "github.com/anchore/syft/syft/pkg"
)

// osvRecord is the part of the OSV schema (https://ossf.github.io/osv-schema/) that
// ParseOSV reads.
type osvRecord struct {
	ID       string   `json:"id"`
	Aliases  []string `json:"aliases"`
	Summary  string   `json:"summary"`
	Details  string   `json:"details"`
	Severity []struct {
		Type  string `json:"type"`
		Score string `json:"score"`
	} `json:"severity"`
	Affected []struct {
		Package struct {
			Ecosystem string `json:"ecosystem"`
			Name      string `json:"name"`
		} `json:"package"`
		Ranges []struct {
			Type   string              `json:"type"`
			Events []map[string]string `json:"events"`
		} `json:"ranges"`
	} `json:"affected"`
	References []struct {
		URL string `json:"url"`
	} `json:"references"`
	DatabaseSpecific struct {
		Severity string `json:"severity"`
	} `json:"database_specific"`
}

// osvEcosystems maps OSV ecosystem names to syft package types.
var osvEcosystems = map[string]syftpkg.Type{
	"Go":        syftpkg.GoModulePkg,
	"npm":       syftpkg.NpmPkg,
	"PyPI":      syftpkg.PythonPkg,
	"Maven":     syftpkg.JavaPkg,
	"crates.io": syftpkg.RustPkg,
	"RubyGems":  syftpkg.GemPkg,
	"NuGet":     syftpkg.DotnetPkg,
	"Packagist": syftpkg.PhpComposerPkg,
	"Debian":    syftpkg.DebPkg,
	"Alpine":    syftpkg.ApkPkg,
}

// ParseOSV parses one OSV JSON document into one [Record] per affected package.
//
// It reads id, aliases, summary (details when there is no summary), references,
// database_specific.severity, severity[] entries of type CVSS_V2, CVSS_V3 and CVSS_V4,
// and for each affected[] entry the package and its SEMVER and ECOSYSTEM ranges, whose
// introduced/fixed/last_affected/limit events become [Range] values. Distro ecosystems
// are read as "Debian:12" and "Alpine:v3.18". Unknown fields are ignored; a document
// without an id, with no affected package, with an ecosystem it does not know or with
// no usable range is an error.
func ParseOSV(data []byte) ([]Record, error) {
	var doc osvRecord
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse OSV JSON: %w", err)
	}
	if doc.ID == "" {
		return nil, fmt.Errorf("parse OSV: record has no id")
	}
	if len(doc.Affected) == 0 {
		return nil, fmt.Errorf("parse OSV %s: no affected packages", doc.ID)
	}
	severity, err := normalizeSeverity(doc.DatabaseSpecific.Severity)
	if err != nil {
		return nil, fmt.Errorf("parse OSV %s: database_specific.severity: %w", doc.ID, err)
	}
	cvss, err := osvCVSS(doc)
	if err != nil {
		return nil, fmt.Errorf("parse OSV %s: %w", doc.ID, err)
	}
	description := strings.TrimSpace(doc.Summary)
	if description == "" {
		description = strings.TrimSpace(doc.Details)
	}
	var urls []string
	for _, ref := range doc.References {
		if u := strings.TrimSpace(ref.URL); u != "" {
			urls = append(urls, u)
		}
	}

	records := make([]Record, 0, len(doc.Affected))
	for i, a := range doc.Affected {
		pkgType, distro, err := osvEcosystem(a.Package.Ecosystem)
		if err != nil {
			return nil, fmt.Errorf("parse OSV %s: affected[%d]: %w", doc.ID, i, err)
		}
		if a.Package.Name == "" {
			return nil, fmt.Errorf("parse OSV %s: affected[%d]: package has no name", doc.ID, i)
		}
		var ranges []Range
		for j, r := range a.Ranges {
			if r.Type != "SEMVER" && r.Type != "ECOSYSTEM" {
				continue // GIT ranges name commits, not versions
			}
			rs, err := osvRanges(r.Events)
			if err != nil {
				return nil, fmt.Errorf("parse OSV %s: affected[%d].ranges[%d]: %w", doc.ID, i, j, err)
			}
			ranges = append(ranges, rs...)
		}
		if len(ranges) == 0 {
			return nil, fmt.Errorf("parse OSV %s: affected[%d] (%s): no SEMVER or ECOSYSTEM range", doc.ID, i, a.Package.Name)
		}
		rec := Record{
			ID:          doc.ID,
			Aliases:     doc.Aliases,
			Type:        string(pkgType),
			Distro:      distro,
			Package:     a.Package.Name,
			Ranges:      ranges,
			Severity:    severity,
			CVSS:        cvss,
			Description: description,
			URLs:        urls,
		}
		if err := rec.validate(); err != nil {
			return nil, fmt.Errorf("parse OSV %s: affected[%d]: %w", doc.ID, i, err)
		}
		records = append(records, rec)
	}
	return records, nil
}

// osvEcosystem returns the syft package type and the distro ("debian:12") of an OSV
// ecosystem such as "Go" or "Debian:12".
func osvEcosystem(ecosystem string) (syftpkg.Type, string, error) {
	name, release, hasRelease := strings.Cut(ecosystem, ":")
	t, ok := osvEcosystems[name]
	if !ok {
		return "", "", fmt.Errorf("unsupported OSV ecosystem %q", ecosystem)
	}
	if t != syftpkg.DebPkg && t != syftpkg.ApkPkg {
		if hasRelease {
			return "", "", fmt.Errorf("unsupported OSV ecosystem %q", ecosystem)
		}
		return t, "", nil
	}
	release = strings.TrimPrefix(release, "v")
	if release == "" {
		return "", "", fmt.Errorf("OSV ecosystem %q has no release (want e.g. %q)", ecosystem, name+":12")
	}
	return t, strings.ToLower(name) + ":" + release, nil
}

// osvRanges turns the events of one OSV range into version ranges.
func osvRanges(events []map[string]string) ([]Range, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("range has no events")
	}
	var out []Range
	lower, open := "", false
	for k, ev := range events {
		if len(ev) != 1 {
			return nil, fmt.Errorf("event %d: want exactly one of introduced, fixed, last_affected, limit", k)
		}
		for kind, v := range ev {
			if v == "" {
				return nil, fmt.Errorf("event %d: empty %s version", k, kind)
			}
			switch kind {
			case "introduced":
				lower, open = v, true
				if v == "0" {
					lower = ""
				}
			case "fixed", "last_affected", "limit":
				if !open {
					return nil, fmt.Errorf("event %d: %s %q without introduced", k, kind, v)
				}
				op := map[string]string{"fixed": "< ", "last_affected": "<= ", "limit": "< "}[kind]
				r := Range{Vulnerable: joinBounds(lower, op+v)}
				if kind == "fixed" {
					r.FixedIn = v
				}
				out = append(out, r)
				lower, open = "", false
			default:
				return nil, fmt.Errorf("event %d: unknown event %q", k, kind)
			}
		}
	}
	if open {
		out = append(out, Range{Vulnerable: joinBounds(lower, "")})
	}
	return out, nil
}

// joinBounds builds a grype constraint from an optional lower bound (inclusive) and an
// optional upper bound expression.
func joinBounds(lower, upper string) string {
	switch {
	case lower == "":
		return upper
	case upper == "":
		return ">= " + lower
	default:
		return ">= " + lower + ", " + upper
	}
}

// osvCVSS returns the CVSS vectors of an OSV record.
func osvCVSS(doc osvRecord) ([]CVSS, error) {
	var out []CVSS
	for i, s := range doc.Severity {
		if !strings.HasPrefix(s.Type, "CVSS_V") {
			continue
		}
		version := strings.TrimPrefix(s.Type, "CVSS_V")
		if prefix, rest, ok := strings.Cut(s.Score, "/"); ok && strings.HasPrefix(prefix, "CVSS:") && rest != "" {
			version = strings.TrimPrefix(prefix, "CVSS:")
		} else if s.Type != "CVSS_V2" {
			return nil, fmt.Errorf("severity[%d]: %s score %q is not a CVSS vector", i, s.Type, s.Score)
		}
		out = append(out, CVSS{Version: version, Vector: s.Score})
	}
	return out, nil
}
